import socket
def rawreq(b, payload_bytes):
    s = socket.create_connection(b.console, timeout=10)
    s.sendall(b"#RB1\n")
    buf = b""
    while b"#RB1 OK" not in buf or not buf.endswith(b"\n"):
        buf += s.recv(65536)
    s.sendall(b"1 " + payload_bytes + b"\n")
    buf = b""
    lines = []
    while not lines:
        d = s.recv(65536)
        if not d: break
        buf += d
        lines = [l for l in buf.split(b"\n") if l.startswith(b"1 ") or l.startswith(b"- ")]
    s.sendall(b"2 bye\n"); s.close()
    return lines[0].decode("utf-8", "replace") if lines else "<no answer>"
