"""The two names every explorer module shares, in a module of their own so that the pages' modules
need not import the package's __init__ (which loads them on first use): no import cycle."""

PAGE_NAME = "explorer.html"


class ExplorerError(ValueError):
    """A directory the explorer cannot make a page of: the message is one line."""
