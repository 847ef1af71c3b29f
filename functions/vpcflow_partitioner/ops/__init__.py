"""What runs on an operator's machine, never in the function's zip: the console script, init,
audit, the demo, synthetic flow logs and the deploy helper."""
