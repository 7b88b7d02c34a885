"""Loading one job: batches of validated rows COPYed into a staging table, each committed
with its refused rows and the job's checkpoint, then one publish into the target.

    batches.py    records → batches of COPY lines and refused rows (pure)
    staging.py    the per-job staging table and COPY into it
    checkpoint.py one batch committed: rows, refused rows, checkpoint, counts
    publish.py    the staging rows into the target, in one transaction
    segment.py    one bounded segment of a job, under the job's lock
"""
