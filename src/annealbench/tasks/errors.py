"""Errors the tasks raise about their data."""


class DatasetError(RuntimeError):
    """A data set is missing or fails its checks; the message says where and how to get it."""
