"""The HTTP API: uploads, jobs, refused rows, targets and health."""
