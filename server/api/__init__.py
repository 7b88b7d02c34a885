"""The HTTP API: API keys, uploads, jobs, refused rows, targets and health."""
