# ctl_bad_requests.py FILE: writes random and hostile control requests, NUL-
# separated, for the control socket tests.
import random, sys
random.seed(1)
words = [b"status", b"metrics", b"dispose", b"pause", b"resume", b"health", b"help"]
alphabet = b"\x00\x01\t\r \"\\%{}[]:,\xc3\xa9\xff" + bytes(range(0x20, 0x7f))
with open(sys.argv[1], "wb") as f:
    for _ in range(3000):
        w = bytearray(random.choice(words))
        for _ in range(random.randint(0, 4)):
            op, pos = random.randint(0, 2), random.randint(0, len(w))
            if op == 0:
                w[pos:pos] = bytes(random.choice(alphabet) for _ in range(random.randint(1, 8)))
            elif op == 1 and w:
                del w[pos:pos + random.randint(1, 4)]
            else:
                w[pos:pos] = random.choice(words)
        f.write(bytes(w).replace(b"\n", b"") + random.choice([b"\n", b"\r\n", b" \n"]))
    for w in words:
        f.write(w + b"\n")
