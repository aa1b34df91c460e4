from common import *
b = boot("/tmp/atk/c3b")
fails = {}
try:
    for i in range(30):
        s = socket.create_connection(b.console, timeout=10)
        s.sendall(b"#RB1\n1 challenge\n")
        buf = b""
        try:
            while b"1 OK" not in buf and b"IN_USE" not in buf:
                d = s.recv(65536)
                if not d: buf += b"<EOF>"; break
                buf += d
            k = "ok" if b"1 OK" in buf else buf[-80:]
        except Exception as e:
            k = repr(e)
        fails[str(k)] = fails.get(str(k), 0) + 1
        if i % 2: s.sendall(b"2 bye\n")
        s.close()
finally:
    print(fails); b.stop()
