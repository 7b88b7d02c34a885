"""Job records and refused rows: the source of truth for every import."""
