"""lyco's trainer. Not built yet: `lyco train` arrives with its own issue."""
