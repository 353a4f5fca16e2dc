"""The one exception type users see: a message naming the input and how to fix it."""


class ImagegenError(Exception):
    """A problem with the user's input or environment, with a message that says how to fix it.

    The CLI prints these as one line (``error: ...``) without a traceback.
    """
