"""The store's own errors. The core translates them into its error hierarchy (`Store.translate_error`),
so the store never imports the core."""


class StoreError(Exception):
    """The data directory cannot be used (newer format, corrupt, locked)."""


class StoreUnavailable(Exception):
    """A write is refused or failed as a whole: shutting down, overloaded, full, or an LMDB error."""


class KeyTooLong(ValueError):
    """A value that becomes a key is empty or longer than LMDB can hold."""
