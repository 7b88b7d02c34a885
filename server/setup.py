"""Prepare what the service needs: its services (started when they do not answer), the
database, migrations, the broker's topology and its management UI, and, on a fresh local
install, the signing secret and a first API key. Says what is missing instead of a stack
trace.

    python -m server.setup
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import psycopg2
import redis
from kombu import Connection
from psycopg2 import sql
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from server import demo
from server.db import raw_cursor
from server.jobs.migrate import upgrade
from server.keys.keys import any_key, create_key
from server.keys.secret import UnsafeSecret, signing_secret, write_private
from server.messaging import topology
from server.services import CannotStart
from server.services.bring_up import bring_up
from server.settings import Settings, get_settings

FIRST_TENANT = "default"

HOW_TO_START = {
    "PostgreSQL": "is something else on that port? Set DATABASE_URL",
    "Redis": "is something else on that port? Set REDIS_URL",
    "RabbitMQ": "is that RabbitMQ? Check the user, password and virtual host in BROKER_URL",
    "The object store": "check STORAGE_URL, S3_ENDPOINT_URL and the AWS credentials",
}
POSTGRES_WANTS_CREDENTIALS = (
    "PostgreSQL at {where} asks for a password: put it in DATABASE_URL (in .env or the "
    "environment), as postgresql+psycopg2://USER:PASSWORD@{where}/{database}; or point "
    "DATABASE_URL at a free port on 127.0.0.1 and `make run` starts a server of its own there"
)


class Unreachable(RuntimeError):
    pass


def ensure_database(settings: Settings) -> None:
    """Create the database named in DATABASE_URL if the server does not have it yet."""
    url = make_url(settings.database_url)
    params = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
        "password": url.password or None,
        "connect_timeout": 5,
    }
    try:
        server = psycopg2.connect(dbname="postgres", **params)
    except psycopg2.OperationalError as error:
        where = f"{params['host']}:{params['port']}"
        if "password" in str(error) and not url.password:
            raise CannotStart(
                POSTGRES_WANTS_CREDENTIALS.format(where=where, database=url.database)
            ) from None
        raise Unreachable("PostgreSQL", where, error) from None
    server.autocommit = True
    with server.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(url.database)))
            print(f"created database {url.database}")
    server.close()


def check_redis(settings: Settings) -> None:
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3).ping()
    except redis.exceptions.ConnectionError as error:
        raise Unreachable("Redis", settings.redis_url, error) from None


def prepare_broker(settings: Settings, own: bool) -> None:
    """The project's own broker got its user and virtual host when it was brought up."""
    if not own:
        ensure_vhost(settings)
    try:
        with Connection(settings.broker_url, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # noqa: BLE001 - kombu raises several kinds here
        raise Unreachable("RabbitMQ", settings.broker_url.split("@")[-1], error) from None
    with Connection(settings.broker_url) as connection:
        topology.declare(connection, topology.build(settings))


def ensure_vhost(settings: Settings) -> None:
    """A virtual host other than `/` (the tests use their own) is created on a local broker."""
    connection = Connection(settings.broker_url)
    vhost, user = connection.virtual_host, connection.userid or "guest"
    if vhost in ("/", "") or not shutil.which("rabbitmqctl"):
        return
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=False
    )
    if listed.returncode == 0 and vhost not in listed.stdout.split():
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
            check=True,
        )


def enable_management(settings: Settings) -> str:
    """The management UI, on a local broker that does not have it on yet."""
    management_url = settings.management_url
    try:
        urllib.request.urlopen(management_url, timeout=2).close()  # noqa: S310 - our broker
    except (urllib.error.URLError, OSError):
        if not shutil.which("rabbitmq-plugins"):
            return "management UI not reachable (enable the rabbitmq_management plugin)"
        subprocess.run(
            ["rabbitmq-plugins", "enable", "--quiet", "rabbitmq_management"],
            check=False,
            capture_output=True,
        )
    user = Connection(settings.broker_url).userid or "guest"
    return f"management UI: {management_url} (log in as {user})"


def main() -> int:
    settings = get_settings()
    try:
        signing_secret(settings)
        settings, own_broker = bring_services_up(settings)
        ensure_database(settings)
        check_redis(settings)
        prepare_broker(settings, own_broker)
        prepare_storage(settings)
    except (UnsafeSecret, CannotStart) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Unreachable as error:
        service, where, cause = error.args
        print(
            f"error: {service} is not reachable at {where}: {cause}\n  {HOW_TO_START[service]}",
            file=sys.stderr,
        )
        return 1
    upgrade(settings.database_url)
    settings.upload_dir.mkdir(parents=True, exist_ok=True)
    print("database migrated, broker topology declared;", enable_management(settings))
    if settings.environment == "local":
        print(demo_table(settings))
    print(first_key(settings))
    return 0


def prepare_storage(settings: Settings) -> None:
    """An object store's bucket, made if it is not there yet."""
    if not settings.storage_url.startswith("s3://"):
        return
    from server.objectstore import ensure_bucket  # boto3 only where it is used

    try:
        if ensure_bucket(settings.storage_url, settings.s3_endpoint_url):
            print(f"created the bucket of {settings.storage_url}")
    except Exception as error:  # noqa: BLE001 - boto3 raises many kinds here
        where = settings.s3_endpoint_url or "AWS S3"
        raise Unreachable("The object store", where, error) from None


def bring_services_up(settings: Settings) -> tuple[Settings, bool]:
    """Each service used where it answers, or started (see server/services/); the settings
    read again when compose's services brought URLs of their own."""
    report = bring_up(settings)
    print("\n".join(report.lines))
    if report.urls:
        get_settings.cache_clear()
        settings = get_settings()
    return settings, "rabbitmq" in report.ours


def demo_table(settings: Settings) -> str:
    """A local install gets the demo table, for the sample file (never in production)."""
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            demo.create_table(raw_cursor(connection))
    finally:
        engine.dispose()
    return f"demo table: {demo.TABLE} (try {os.path.relpath(demo.SAMPLE)})"


def first_key(settings: Settings) -> str:
    """A fresh local install gets a key for the tenant `default`, in a file only its owner
    can read; once any key exists, keys are the operator's to make."""
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as connection:
            if settings.environment == "production" or any_key(connection):
                made = None
            else:
                made = create_key(connection, FIRST_TENANT, "made by setup on a fresh install")
    finally:
        engine.dispose()
    path = settings.api_key_file
    if made is not None:
        write_private(path, made[1])
        return f"an API key for tenant {FIRST_TENANT!r} is in {path} (only you can read it)"
    if path.exists():
        return f"API key: {path}"
    return "API keys: make one with `csv-import-keys create --tenant NAME`"


if __name__ == "__main__":
    sys.exit(main())
