"""The operations CLI: ``python -m ops <command>`` (``make <command>`` is a thin alias)."""
