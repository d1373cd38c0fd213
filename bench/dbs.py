"""Shared by the Python benches (imported, not run): the binaries measured,
and the servers, UNLATCH_TEST_POSTGRES_URL and UNLATCH_TEST_MYSQL_URL (the
test suite's variables), driven with the psql and mariadb command-line
clients."""
import os
import subprocess
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binaries():
    """(unlatch, stale-lock example): the release build, built now, or with
    BENCH_BIN_DIR set (as bench/run does), the copies in that folder, so
    that a rebuild meanwhile cannot change what a run measures."""
    if os.environ.get("BENCH_BIN_DIR"):
        d = os.environ["BENCH_BIN_DIR"]
        return os.path.join(d, "unlatch"), os.path.join(d, "stale-lock")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "unlatch", "--example", "stale-lock"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target/release/unlatch"), os.path.join(ROOT, "target/release/examples/stale-lock")


VARS = (("postgres", "UNLATCH_TEST_POSTGRES_URL"), ("mysql", "UNLATCH_TEST_MYSQL_URL"))
NAME = {"postgres": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}


class Server:
    def __init__(self, engine, url):
        self.engine, self.url = engine, url
        self.parsed = urllib.parse.urlparse(url)
        self.port = self.parsed.port or (5432 if engine == "postgres" else 3306)

    @property
    def name(self):
        return NAME[self.engine]

    def url_for(self, db):
        """The URL of database `db` on this server."""
        return self.parsed._replace(path="/" + db, query="").geturl()

    def client(self, db=None):
        """The command-line client's argv and environment."""
        if self.engine == "postgres":
            return ["psql", "-qAtX", "-F", "\t", "-v", "ON_ERROR_STOP=1", self.url_for(db) if db else self.url], os.environ
        p = self.parsed
        return (["mariadb", "-N", "-B", "-n", "-h", p.hostname or "127.0.0.1", "-P", str(self.port),
                 "-u", urllib.parse.unquote(p.username or "root")] + ([db] if db else []),
                dict(os.environ, MYSQL_PWD=urllib.parse.unquote(p.password or "")))

    def sql(self, statement, db=None):
        """Runs SQL with the command-line client; the rows as tuples of text."""
        cmd, env = self.client(db)
        flag = "-c" if self.engine == "postgres" else "-e"
        out = subprocess.run(cmd + [flag, statement], capture_output=True, text=True, env=env, check=True).stdout
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def session(self):
        """A client session opened now and kept, for queries later on (when
        the server may have no connection left to give)."""
        return Session(*self.client())


class Session:
    END = "--end-of-rows--"

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.sql("SELECT 1")  # connected

    def sql(self, statement):
        self.proc.stdin.write(f"{statement.rstrip(';')};\nSELECT '{self.END}';\n")
        self.proc.stdin.flush()
        rows = []
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line == self.END:
                return rows
            if line:
                rows.append(tuple(line.split("\t")))
        raise RuntimeError(f"{self.proc.args[0]} ended")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def servers():
    """The servers whose URL is set."""
    return [Server(engine, os.environ[var]) for engine, var in VARS if os.environ.get(var)]
