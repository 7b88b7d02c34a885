"""Loading one job: batches of validated rows COPYed into a staging table, each committed
with its refused rows and the job's checkpoint, then one publish into the target.

    batches.py     records → batches of COPY lines, refused rows and questions (pure)
    judge.py       PostgreSQL's verdict on the values a converter could not decide
    staging.py     the per-job staging table and COPY into it
    checkpoint.py  one batch committed: rows, refused rows, checkpoint, counts
    publish.py     set-based refusals (superseded keys, duplicate keys) and the insert
    finish.py      the end of a staged job: those steps committed one by one, then the
                   one atomic insert
    accounting.py  every line loaded, refused or superseded; the error budget
    segment.py     one bounded segment of a job, under the job's lock
"""
