"""The operations CLI (``python -m ops <command>``)."""
