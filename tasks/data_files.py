"""Reading the task CLIs' data files as text, with errors that name the line."""


def read_utf8(path, error_type=ValueError):
    """Returns the whole text of `path`, decoded as UTF-8 (a leading BOM dropped).

    Python's own decoding error gives a byte offset inside a read buffer; this
    one names the file, the line and the column of the first invalid byte.

    Args:
        path: str, the file to read.
        error_type: the `ValueError` subclass to raise (a task's format error).

    Returns:
        str, the file's text.

    Example:

    >>> text = read_utf8("glue/SST-2/train.tsv")
    """
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        line_start = data.rfind(b"\n", 0, error.start) + 1
        raise error_type(
            f"{path}, line {line}: not valid "
            f"UTF-8 ({error.reason} at column {error.start - line_start + 1}, "
            f"byte offset {error.start}). Expected a UTF-8 text file; convert it "
            "(e.g. `iconv -f LATIN1 -t UTF-8`) or fix that line. Received: "
            f"bytes {data[error.start : error.start + 4]!r}"
        ) from None
    return text.removeprefix("\ufeff")
