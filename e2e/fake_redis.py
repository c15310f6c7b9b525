"""A scripted RESP server on a free loopback port, for the cases a real
redis-server cannot be made to show on demand: a cluster node answering
-TRYAGAIN to a one-key GET, a primary answering -READONLY, a sentinel
that names whatever the test says and never publishes +switch-master.

`handler(args) -> bytes` answers one command (a list of bytes); the
server parses RESP arrays of bulk strings (all a client sends) and
counts the commands it saw in `seen`.  Threads only; stopped by close().
"""
import socket
import threading


def bulk(s):
    if s is None:
        return b"$-1\r\n"
    if isinstance(s, str):
        s = s.encode()
    return b"$%d\r\n%s\r\n" % (len(s), s)


def array(items):
    out = b"*%d\r\n" % len(items)
    for i in items:
        if isinstance(i, int):
            out += b":%d\r\n" % i
        elif isinstance(i, list):
            out += array(i)
        else:
            out += bulk(i)
    return out


def parse_commands(buf):
    """Complete commands at the head of buf, and the rest."""
    cmds = []
    while buf.startswith(b"*"):
        end = buf.find(b"\r\n")
        if end < 0:
            break
        n = int(buf[1:end])
        pos = end + 2
        args = []
        for _ in range(n):
            e = buf.find(b"\r\n", pos)
            if e < 0 or buf[pos:pos + 1] != b"$":
                return cmds, buf
            ln = int(buf[pos + 1:e])
            if len(buf) < e + 2 + ln + 2:
                return cmds, buf
            args.append(buf[e + 2:e + 2 + ln])
            pos = e + 2 + ln + 2
        if len(args) < n:
            break
        cmds.append(args)
        buf = buf[pos:]
    return cmds, buf


class FakeRedis:
    def __init__(self, handler):
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        buf = b""
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            cmds, buf = parse_commands(buf)
            out = b""
            for args in cmds:
                with self.lock:
                    self.seen.append([a.decode(errors="replace")
                                      for a in args])
                out += self.handler(args)
            if out:
                try:
                    c.sendall(out)
                except OSError:
                    return

    def count(self, name):
        with self.lock:
            return sum(1 for a in self.seen if a and a[0].upper() == name)

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
