"""Every LMDB table, declared in one place, named `<key>_<value>`.

Keys are fixed-width big-endian ids (see keys.py) or case-folded text; values
are cbor2-encoded records unless the name says `_id` (8 raw bytes) or ends in
`_` (the key alone carries the fact, the value is empty).
"""

TABLES = (
    "meta",                    # name → cbor value (format version, secrets)
    "userid_user",             # user id → User
    "username_userid",         # casefolded login → user id
    "email_userid",            # casefolded email → user id
    "phone_userid",            # normalised phone → user id
    "sessionid_session",       # session id → Session
    "tokenhash_sessionid",     # sha256(access token) → session id
    "refreshhash_sessionid",   # sha256(refresh token) → session id
    "useridsessionid_",        # user id ‖ session id → ∅ (a user's sessions)
    "useriddevice_sessionid",  # user id ‖ casefolded device id → session id
    "adminhash_admintoken",    # sha256(admin token) → AdminToken
)

FORMAT_VERSION = 1

# Tables keyed by a bare snowflake: their highest key bounds every id issued so far.
ID_TABLES = ("userid_user", "sessionid_session")
