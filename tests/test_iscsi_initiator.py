"""A small iSCSI initiator (RFC 7143) for the tests and benchmarks of the board's host ports.

It speaks the wire protocol directly, so tests can send anything: well-formed sessions with
digests, R2T-driven writes, task management, and deliberately broken PDUs. Not a production
initiator: one connection, one outstanding command unless the caller pipelines PDUs itself.
"""
import hashlib
import os
import socket
import struct

IQN = "iqn.1998-06.com.mylex:dac960sx"
INITIATOR = "iqn.2026-01.test.raidboard:pytest"


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _T
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def text(pairs):
    return b"".join(("%s=%s" % kv).encode() + b"\0" for kv in pairs)


def parse_text(data):
    out = {}
    for item in data.split(b"\0"):
        if item:
            k, _, v = item.decode().partition("=")
            out[k] = v
    return out


class ISCSIError(Exception):
    pass


class PDU:
    def __init__(self, bhs, data=b"", ahs=b""):
        self.bhs = bytes(bhs)
        self.data = data
        self.ahs = ahs

    @property
    def op(self):
        return self.bhs[0] & 0x3F

    def u32(self, off):
        return struct.unpack_from(">I", self.bhs, off)[0]

    def __repr__(self):
        return "PDU(op=0x%02x flags=0x%02x len=%d)" % (self.op, self.bhs[1], len(self.data))


def bhs(op, flags=0, lun=0, itt=0, words=()):
    """A 48-byte BHS: opcode byte, flags, LUN field, ITT and (offset, u32) words."""
    b = bytearray(48)
    b[0] = op
    b[1] = flags
    b[8:16] = struct.pack(">Q", lun << 48 if lun < 256 else (0x40 << 56) | (lun << 48))
    struct.pack_into(">I", b, 16, itt)
    for off, v in words:
        struct.pack_into(">I", b, off, v & 0xFFFFFFFF)
    return b


class Initiator:
    def __init__(self, host, port, name=INITIATOR, timeout=30.0, isid=None, source=None, rcvbuf=0):
        """`source`: the local address to connect from; `rcvbuf`: a small receive buffer (set
        before connecting, so the TCP window stays small) for initiators that stop reading."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.name = name
        self.isid = isid or (b"\x80" + os.urandom(5))
        self.itt = 1
        self.cmdsn = 0
        self.expstatsn = 0
        self.hd = self.dd = False
        self.tsih = 0
        self.params = {}
        self.target_mrdsl = 8192
        self.max_cmdsn = 0

    # ---------------- wire ----------------
    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, b, data=b"", ahs=b""):
        b = bytearray(b)
        b[4] = len(ahs) // 4
        b[5:8] = len(data).to_bytes(3, "big")
        out = bytes(b) + ahs
        if self.hd:
            out += struct.pack("<I", crc32c(bytes(b) + ahs))
        if data:
            pad = b"\0" * (-len(data) % 4)
            out += data + pad
            if self.dd:
                out += struct.pack("<I", crc32c(data + pad))
        self.sock.sendall(out)

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("target closed the connection")
            buf += chunk
        return bytes(buf)

    def recv(self):
        b = self.recv_exact(48)
        ahs = self.recv_exact(b[4] * 4) if b[4] else b""
        if self.hd:
            d = struct.unpack("<I", self.recv_exact(4))[0]
            if d != crc32c(b + ahs):
                raise ISCSIError("bad header digest from target")
        n = int.from_bytes(b[5:8], "big")
        data = b""
        if n:
            raw = self.recv_exact(n + (-n % 4))
            data = raw[:n]
            if self.dd:
                d = struct.unpack("<I", self.recv_exact(4))[0]
                if d != crc32c(raw):
                    raise ISCSIError("bad data digest from target")
        p = PDU(b, data, ahs)
        if p.op in (0x21, 0x22, 0x24, 0x26, 0x20, 0x3F) or (p.op == 0x25 and b[1] & 1):
            self.expstatsn = (p.u32(24) + 1) & 0xFFFFFFFF
        if p.op != 0x23:
            self.max_cmdsn = p.u32(32)
        return p

    def next_itt(self):
        self.itt = (self.itt + 1) & 0x7FFFFFFF
        return self.itt

    # ---------------- login ----------------
    def login(self, target=IQN, discovery=False, digests=False, chap=None, extra=(), ops=None):
        """Security (when chap=(user, secret)) then operational stage, then full feature."""
        itt = self.next_itt()
        base = [("InitiatorName", self.name), ("SessionType", "Discovery" if discovery else "Normal")]
        if not discovery:
            base.append(("TargetName", target))
        dig = "CRC32C,None" if digests else "None"
        op = [("HeaderDigest", dig), ("DataDigest", dig), ("MaxRecvDataSegmentLength", "262144"),
              ("DefaultTime2Wait", "2"), ("DefaultTime2Retain", "0"), ("IFMarker", "No"),
              ("OFMarker", "No"), ("ErrorRecoveryLevel", "0")]
        if not discovery:
            op += [("InitialR2T", "No"), ("ImmediateData", "Yes"), ("MaxBurstLength", "1048576"),
                   ("FirstBurstLength", "262144"), ("MaxOutstandingR2T", "1"), ("MaxConnections", "1"),
                   ("DataPDUInOrder", "Yes"), ("DataSequenceInOrder", "Yes")]
        if ops:
            d = dict(op)
            d.update(ops)
            op = list(d.items())
        op += list(extra)
        got = {}
        if chap:
            r = self._login_pdu(itt, 0, 1, True, base + [("AuthMethod", "CHAP,None")])
            got.update(parse_text(r.data))
            if r.bhs[1] & 0x80:
                raise ISCSIError("target skipped CHAP")
            r = self._login_pdu(itt, 0, 1, False, [("CHAP_A", "5")])
            kv = parse_text(r.data)
            cid = int(kv["CHAP_I"])
            chal = bytes.fromhex(kv["CHAP_C"][2:])
            resp = hashlib.md5(bytes([cid]) + chap[1].encode() + chal).hexdigest()
            r = self._login_pdu(itt, 0, 1, True, [("CHAP_N", chap[0]), ("CHAP_R", "0x" + resp)])
            got.update(parse_text(r.data))
            r = self._login_pdu(itt, 1, 3, True, op)
        else:
            r = self._login_pdu(itt, 1, 3, True, base + op)
        got.update(parse_text(r.data))
        self.params = got
        self.tsih = struct.unpack_from(">H", r.bhs, 14)[0]
        self.target_mrdsl = int(got.get("MaxRecvDataSegmentLength", "8192"))
        self.hd = got.get("HeaderDigest") == "CRC32C"
        self.dd = got.get("DataDigest") == "CRC32C"
        return got

    def _login_pdu(self, itt, csg, nsg, transit, pairs):
        b = bhs(0x43, (0x80 if transit else 0) | (csg << 2) | nsg, 0, itt,
                [(20, 0), (24, self.cmdsn), (28, self.expstatsn)])
        b[8:14] = self.isid
        b[14:16] = struct.pack(">H", self.tsih)
        b[20:22] = b"\0\x01"  # CID 1
        self.send(b, text(pairs))
        r = self.recv()
        if r.op != 0x23:
            raise ISCSIError("expected login response, got %r" % r)
        self.status = (r.bhs[36] << 8) | r.bhs[37]
        if self.status:
            raise ISCSIError("login failed: status 0x%04x" % self.status)
        self.expstatsn = (r.u32(24) + 1) & 0xFFFFFFFF
        self.max_cmdsn = r.u32(32)
        return r

    # ---------------- full feature ----------------
    def text_req(self, pairs):
        itt = self.next_itt()
        self.send(bhs(0x04, 0x80, 0, itt, [(20, 0xFFFFFFFF), (24, self.cmdsn), (28, self.expstatsn)]),
                  text(pairs))
        self.cmdsn += 1
        out = b""
        while True:
            r = self.recv()
            if r.op != 0x24:
                raise ISCSIError("expected text response, got %r" % r)
            out += r.data
            if r.bhs[1] & 0x80:
                return out
            self.send(bhs(0x04, 0x80, 0, itt, [(20, r.u32(20)), (24, self.cmdsn), (28, self.expstatsn)]))
            self.cmdsn += 1

    def send_targets(self):
        out = []
        for item in self.text_req([("SendTargets", "All")]).split(b"\0"):
            if item:
                out.append(tuple(item.decode().split("=", 1)))
        return out

    def nop(self, payload=b""):
        itt = self.next_itt()
        self.send(bhs(0x40, 0x80, 0, itt, [(20, 0xFFFFFFFF), (24, self.cmdsn), (28, self.expstatsn)]),
                  payload)
        r = self.recv()
        if r.op != 0x20 or r.u32(16) != itt:
            raise ISCSIError("expected NOP-In, got %r" % r)
        return r.data

    def command(self, lun, cdb, data_out=None, read_len=0, immediate=True, edtl=None, cmdsn=None):
        """Run one SCSI command. Returns dict(status, sense, data, resid, rflags, pdus)."""
        itt = self.next_itt()
        cdb = bytes(cdb)
        data_out = bytes(data_out or b"")
        w = bool(data_out) or (edtl is not None and read_len == 0 and edtl > 0)
        if edtl is None:
            edtl = len(data_out) if data_out else read_len
        flags = 0x80 | (0x20 if w else 0) | (0x40 if read_len else 0) | 1
        first_burst = int(self.params.get("FirstBurstLength", "65536"))
        imm = b""
        use_imm = immediate and self.params.get("ImmediateData", "Yes") == "Yes"
        if data_out and use_imm:
            imm = data_out[:min(first_burst, self.target_mrdsl)]
        unsol = self.params.get("InitialR2T", "Yes") == "No"
        unsol_end = min(first_burst, edtl, len(data_out)) if unsol else len(imm)
        if unsol and data_out and unsol_end > len(imm):
            flags &= ~0x80   # unsolicited Data-Out follows
        ext = b""
        c16 = cdb[:16].ljust(16, b"\0")
        if len(cdb) > 16:
            e = cdb[16:]
            ext = struct.pack(">HBB", len(e) + 1, 1, 0) + e + b"\0" * (-(len(e) + 4) % 4)
        b = bhs(0x01, flags, lun, itt, [(20, edtl), (24, self.cmdsn if cmdsn is None else cmdsn),
                                        (28, self.expstatsn)])
        b[32:48] = c16
        self.send(b, imm, ext)
        if cmdsn is None:
            self.cmdsn += 1
        off = len(imm)
        if unsol and off < unsol_end:
            self._data_out(lun, itt, 0xFFFFFFFF, off, unsol_end - off, data_out)
        data = bytearray(read_len)
        got = 0
        pdus = 0
        while True:
            r = self.recv()
            pdus += 1
            if r.op == 0x31:   # R2T
                if r.u32(16) != itt:
                    raise ISCSIError("R2T for another task")
                self._data_out(lun, itt, r.u32(20), r.u32(40), r.u32(44), data_out)
                continue
            if r.op == 0x25:
                o = r.u32(40)
                data[o:o + len(r.data)] = r.data
                got = max(got, o + len(r.data))
                if r.bhs[1] & 1:
                    return {"status": r.bhs[3], "sense": None, "data": bytes(data[:got]),
                            "rflags": r.bhs[1] & 6, "resid": r.u32(44), "pdus": pdus}
                continue
            if r.op == 0x21:
                sense = None
                if r.data:
                    n = struct.unpack(">H", r.data[:2])[0]
                    sense = r.data[2:2 + n]
                return {"status": r.bhs[3], "sense": sense, "data": bytes(data[:got]),
                        "rflags": r.bhs[1] & 6, "resid": r.u32(44), "pdus": pdus, "response": r.bhs[2]}
            if r.op == 0x3F:
                raise ISCSIError("target rejected the command: reason 0x%02x" % r.bhs[2])
            raise ISCSIError("unexpected %r" % r)

    def _data_out(self, lun, itt, ttt, off, n, data_out):
        mrdsl = self.target_mrdsl
        sn = 0
        end = off + n
        while off < end:
            k = min(mrdsl, end - off)
            chunk = data_out[off:off + k].ljust(k, b"\0")
            self.send(bhs(0x05, 0x80 if off + k == end else 0, lun, itt,
                          [(20, ttt), (28, self.expstatsn), (36, sn), (40, off)]), chunk)
            sn += 1
            off += k

    def read(self, lun, lba, blocks, bs=512):
        cdb = struct.pack(">BBQIBB", 0x88, 0, lba, blocks, 0, 0)
        r = self.command(lun, cdb, read_len=blocks * bs)
        return r

    def write(self, lun, lba, data, bs=512, **kw):
        cdb = struct.pack(">BBQIBB", 0x8A, 0, lba, len(data) // bs, 0, 0)
        return self.command(lun, cdb, data_out=data, **kw)

    def tmf(self, function, lun=0, rtt=0xFFFFFFFF, refcmdsn=0):
        itt = self.next_itt()
        self.send(bhs(0x42, 0x80 | function, lun, itt,
                      [(20, rtt), (24, self.cmdsn), (28, self.expstatsn), (32, refcmdsn)]))
        while True:
            r = self.recv()
            if r.op == 0x22:
                return r.bhs[2]
            if r.op not in (0x21, 0x25):
                raise ISCSIError("expected TMF response, got %r" % r)

    def logout(self):
        itt = self.next_itt()
        b = bhs(0x46, 0x80, 0, itt, [(24, self.cmdsn), (28, self.expstatsn)])
        b[20:22] = b"\0\x01"
        self.send(b)
        r = self.recv()
        if r.op != 0x26:
            raise ISCSIError("expected logout response, got %r" % r)
        self.close()
        return r.bhs[2]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def sense_key(sense):
    return (sense[2] & 0x0F, sense[12], sense[13]) if sense else None


# ---------------- a booted board, as the iSCSI tests see it ----------------
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BootedBoard:
    """The real firmware process of tests/conftest.py (`Board`), plus what iSCSI tests need: URLs
    for libiscsi/qemu and the console's command table (line protocol)."""

    def __init__(self, board):
        self.b = board
        self.portals = board.portals

    @classmethod
    def boot(cls, tmp, **overrides):
        """A board of our own (for module-scoped fixtures and the bench), same boot path as
        conftest's `make_board`."""
        import sys
        sys.path.insert(0, os.path.join(REPO, "tests"))
        import harness as conftest
        tmp = str(tmp)
        state = os.path.join(tmp, "state")
        os.makedirs(state, exist_ok=True)
        path, d = conftest.write_board(tmp, **overrides)
        return cls(conftest.Board(path, state, d["heap_kb"]))

    def alive(self):
        return self.b.alive()

    def log(self):
        return self.b.log()

    def stop(self):
        self.b.stop()

    def command(self, name, args=None):
        import sys
        sys.path.insert(0, os.path.join(REPO, "host"))
        from raidboard import proto
        with proto.Link("socket://%s:%d" % tuple(self.b.console)) as link:
            return link.request(name, args or {})

    def url(self, lun, port=0, auth=""):
        h, p = self.portals[port]
        return "iscsi://%s%s:%d/%s/%d" % (auth, h, p, IQN, lun)
