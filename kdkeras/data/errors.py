"""Errors raised by `kdkeras.data`.

Every error is a subclass of `DataError` and of the matching built-in
(`FileNotFoundError`, `ValueError`, `ConnectionError`), so callers can catch either.
Messages are one line that names the file or directory and says what to do.
The loaders raise them `from None`, so a failed load prints one short traceback
instead of a chain of library internals (the original error's text is kept in
the message).
"""

from __future__ import annotations


class DataError(Exception):
    """Base class of every error raised by `kdkeras.data`."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The data directory or a file the loader needs is missing."""


class DataDownloadError(DataError, ConnectionError):
    """The data is not on disk and could not be downloaded (e.g. no network)."""


class ChecksumError(DataError, ValueError):
    """A file's checksum differs from the published one."""


class DataFormatError(DataError, ValueError):
    """A file exists but its content has the wrong shape, dtype or labels."""


class UnknownDatasetError(DataError, ValueError):
    """`load_dataset` was given a name that is not registered."""
