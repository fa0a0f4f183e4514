"""``python -m ops ci check``: the GitHub side of CI, checked against what the workflows assume.

``expected`` derives the GitHub Environments, their branch rules, reviewers and variables from the
environment files and the workflows; ``github`` reads the live settings through the REST API;
``check`` compares the two and is the command.
"""
