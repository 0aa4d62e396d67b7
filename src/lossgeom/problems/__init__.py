"""Learning problems: datasets, models and losses, built by name from config specs."""
