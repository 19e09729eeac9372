"""Runs example.py against a real gateway (bearer token set) and checks what it prints: the
tokens of StreamChat add up to the echo model's reply, and the subscription resumed with
`after_seq` goes on exactly where the dropped one stopped: no seq twice, none missing.

    PYTHON=python ./generate.sh && python test_example.py     # GATEWAY_BIN picks the binary
"""

import json
import os
import re
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "testing"))
from gateway import Gateway  # noqa: E402

TOKEN = "python-client-secret"
WORDS = "the quick brown fox jumps over the lazy dog"


def run_example(gateway, *args, token=TOKEN):
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_AUTH_TOKEN"}
    if token is not None:
        env["GATEWAY_AUTH_TOKEN"] = token
    return subprocess.run([sys.executable, str(HERE / "example.py"), "--addr", gateway.addr, *args],
                          env=env, capture_output=True, text=True, timeout=60)


def sections(output):
    """The output split at its `== ` headings: [(heading, [lines])]."""
    result = []
    for line in output.splitlines():
        if line.startswith("== "):
            result.append((line[3:], []))
        elif result:
            result[-1][1].append(line)
    return result


def event_seqs(lines):
    return [int(m.group(1)) for line in lines if (m := re.match(r"seq (\d+) \w+$", line))]


class ExampleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gateway = Gateway({"bearer_token": TOKEN})

    @classmethod
    def tearDownClass(cls):
        cls.gateway.stop()

    def test_streams_a_run_and_resumes_the_subscription(self):
        # A slow echo run (20 ms per token), so the reply really arrives in pieces.
        done = run_example(self.gateway, "--session", "py-test", "--text", f"{WORDS}\n!delay 20",
                           "--drop-after", "5")
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        parts = sections(done.stdout)
        self.assertEqual([h.split(" ")[0] for h, _ in parts],
                         ["Sessions/ListSessions", "Chat/StreamChat", "Sessions/Subscribe", "Sessions/Subscribe"],
                         done.stdout)

        # ListSessions: the primary session is there (the example's own one is created after).
        self.assertIn("session main messages=0 processing=False", parts[0][1])

        # StreamChat: accepted first, the tokens, then the result; tokens join to the reply.
        chat = parts[1][1]
        self.assertRegex(chat[0], r"^accepted message_id=[0-9a-f-]{36}$")
        tokens = [json.loads(line[len("token "):]) for line in chat if line.startswith("token ")]
        self.assertGreaterEqual(len(tokens), len(WORDS.split()), chat)
        self.assertEqual("".join(tokens), WORDS)
        self.assertEqual(chat[-1], f"result ok=true response={json.dumps(WORDS)}")

        # Subscribe: the first stream replays from the run's start and drops after 5 events...
        first_heading, first_lines = parts[2]
        after = int(re.search(r"after_seq=(\d+)", first_heading).group(1))
        first = event_seqs(first_lines)
        self.assertEqual(len(first), 5, first_lines)
        self.assertTrue(first_lines[0].startswith("hello latest_seq="), first_lines)
        self.assertEqual(first[0], after + 1, "the replay starts right after after_seq")
        self.assertIn(f"seq {first[0]} agent_start", first_lines)

        # ...and the resumed one starts after its last seq, repeats none, misses none.
        second_heading, second_lines = parts[3]
        summary = second_lines.pop()  # the example's last line: every seq it saw
        self.assertIn(f"after_seq={first[-1]} (resumed)", second_heading)
        second = event_seqs(second_lines)
        self.assertTrue(second, second_lines)
        self.assertGreater(min(second), first[-1])
        everything = first + second
        self.assertEqual(len(everything), len(set(everything)), f"a seq came twice: {everything}")
        self.assertEqual(everything, list(range(first[0], first[0] + len(everything))), "no gap")
        self.assertRegex(second_lines[-1], r"^seq \d+ agent_end$")
        tokens_seen = [line for line in first_lines + second_lines if line.endswith(" token")]
        self.assertEqual(len(tokens_seen), len(tokens), "the log holds every streamed token")
        self.assertEqual(summary, "seqs " + " ".join(map(str, everything)))

    def test_without_the_token_the_gateway_refuses(self):
        refused = run_example(self.gateway, "--session", "py-nope", token=None)
        self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
        self.assertIn("error UNAUTHENTICATED: Unauthorized", refused.stdout)
        wrong = run_example(self.gateway, "--session", "py-nope", token="not-the-token")
        self.assertIn("error UNAUTHENTICATED: Unauthorized", wrong.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
