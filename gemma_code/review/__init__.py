"""Pre-commit review: findings, their grammar, the git diff they review, outputs and cache."""
