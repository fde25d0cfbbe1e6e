import logging

from runners.local.progress import only_errors_from


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_only_errors_pass_until_the_block_ends() -> None:
    logger = logging.getLogger("test-only-errors")
    logger.setLevel(logging.INFO)
    collect = Collect()
    logger.addHandler(collect)
    with only_errors_from("test-only-errors"):
        logger.warning("deprecated")
        logger.error("failed")
    logger.warning("after")
    assert collect.messages == ["failed", "after"]
