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
    "convid_conv",             # conversation id → Conversation
    "convuserid_member",       # conversation id ‖ user id → Member
    "useridconvid_",           # user id ‖ conversation id → ∅ (a user's conversations)
    "userpair_convid",         # low user id ‖ high user id → the pair's private conversation
    "convidmsgid_msg",         # conversation id ‖ message id → Message (history is a range scan)
    "msgid_convid",            # message id → conversation id
    "useridclientid_msgid",    # user id ‖ sha256(client message id)[:16] → message id (retry de-duplication)
    "useridmsgid_",            # user id ‖ message id → ∅ (messages the user deleted for themself)
    "useridblockedid_",        # user id ‖ blocked user id → ∅
    "useridcontactid_contact", # user id ‖ contact id → Contact
    "useridopid_op",           # user id ‖ op id → OpLogEntry (events missed while offline)
    "userid_lastactivity",     # user id → last activity, Unix ms
    "fileid_file",             # file id → File
    "fileidconvid_",           # file id ‖ conversation id → ∅ (where a file was shared)
    "useriddevice_pushsub",    # user id ‖ casefolded device udid → PushSubscription
    "pusheventid_pushevent",   # push event id → PushEvent (explicit push_event_create)
    "pushid_push",             # push id → QueuedPush (durable queue for a push sender)
)

FORMAT_VERSION = 1

# Tables keyed by a bare snowflake: their highest key bounds every id issued so far.
ID_TABLES = ("userid_user", "sessionid_session", "convid_conv", "msgid_convid", "fileid_file", "pushid_push")
