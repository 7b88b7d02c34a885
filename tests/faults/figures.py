"""What the fault suite survived, and whether any row was lost or loaded twice.

Each test adds its faults once its import has been checked row for row against
PostgreSQL's own COPY of the same file; the totals are printed at the end of the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.harness import Database
from tests.support import CUSTOMERS_DDL

# The customers table without its primary key: a row loaded twice would land twice, where
# it can be counted, instead of being refused as a duplicate key.
NO_KEY_DDL = CUSTOMERS_DDL.replace("PRIMARY KEY", "NOT NULL")


@dataclass
class Figures:
    seed: int
    survived: Counter[str] = field(default_factory=Counter)
    imports: int = 0
    rows_expected: int = 0
    rows_lost: int = 0
    rows_duplicated: int = 0

    def add(self, **faults: int) -> None:
        self.survived.update(faults)

    def check_exact(self, db: Database, target: str, reference: str) -> None:
        """The target holds exactly the reference's rows: none missing, none twice."""
        expected = db.value(f"SELECT count(*) FROM {reference}")
        lost = db.value(
            f"SELECT count(*) FROM (TABLE {reference} EXCEPT ALL TABLE {target}) missing"
        )
        extra = db.value(
            f"SELECT count(*) FROM (TABLE {target} EXCEPT ALL TABLE {reference}) extra"
        )
        self.imports += 1
        self.rows_expected += expected
        self.rows_lost += lost
        self.rows_duplicated += extra
        assert (lost, extra) == (0, 0), f"{lost} rows lost, {extra} rows too many in {target}"
        assert db.checksum(target) == db.checksum(reference)

    def lines(self) -> list[str]:
        kills = self.survived["worker_kills"] + self.survived["api_kills"]
        restarts = self.survived["broker_restarts"] + self.survived["redis_restarts"]
        return [
            f"fault seed: {self.seed} (FAULT_SEED={self.seed} reproduces this run)",
            f"kills survived: {kills} (worker SIGKILLs {self.survived['worker_kills']}, "
            f"API SIGKILLs {self.survived['api_kills']})",
            f"restarts survived: {restarts} (RabbitMQ {self.survived['broker_restarts']}, "
            f"Redis {self.survived['redis_restarts']})",
            f"database connections terminated: {self.survived['connections_terminated']}",
            f"duplicate deliveries: {self.survived['duplicate_deliveries']}",
            f"imports checked: {self.imports}, rows expected: {self.rows_expected}",
            f"rows lost: {self.rows_lost}",
            f"rows duplicated: {self.rows_duplicated}",
        ]
