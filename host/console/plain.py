"""Plain line-by-line setup for serial consoles and dumb terminals: prompts and answers,
ASCII only, no escape sequences. Typing `back` returns to the previous question and
`cancel` (or end of input) leaves without starting anything."""

import contextlib
import sys
import termios
import textwrap
import time
from pathlib import Path
from typing import TextIO

from host.console import progress
from host.console.questions import (
    QUESTIONS,
    REVIEW_NOTE,
    Question,
    api_answers,
    errors_for,
    index_of,
    review_lines,
)
from host.core import state
from host.setup import credentials
from host.setup import request as setup_request
from host.setup.inputs import (
    InputErrors,
    admin_password_stored,
    parse_setup_inputs,
    password_stored,
)
from host.setup.progress import failure_view

WIDTH = 78


class Cancelled(Exception):
    pass


class PlainConsole:
    def __init__(self, root: Path | None, node_ip: str, resolvers: list[str],
                 stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout):
        self.root, self.node_ip, self.resolvers = root, node_ip, resolvers
        self.stdin, self.stdout = stdin, stdout
        self.printed: set[str] = set()
        # The last setup's inputs: the proxy password and admin password hash Enter keeps.
        self.stored = state.read(state.SETUP_INPUTS, root)
        self.admin_user = credentials.admin_user(root)

    def say(self, text: str = "") -> None:
        self.write(text + "\n")

    def write(self, text: str) -> None:
        """ASCII only: a serial console may not speak UTF-8."""
        self.stdout.write(text.replace("\u2192", "->").encode("ascii", "replace").decode())
        self.stdout.flush()

    def ask(self, prompt: str, secret: bool = False) -> str:
        """The reply, trimmed; a secret one is read without echo and kept as typed, command
        words too (only the end of input cancels at a secret's prompt)."""
        self.write(prompt)
        with self.echo_off() if secret else contextlib.nullcontext():
            line = self.stdin.readline()
        if secret:
            self.write("\n")  # the Enter the terminal did not echo
        if not line:
            raise Cancelled
        reply = line.rstrip("\r\n") if secret else line.strip()
        if not secret and reply.lower() in ("cancel", "quit"):
            raise Cancelled
        return reply

    @contextlib.contextmanager
    def echo_off(self):
        """What getpass does, on our own stdin (a pipe has no echo to turn off)."""
        if not self.stdin.isatty():
            yield
            return
        descriptor = self.stdin.fileno()
        before = termios.tcgetattr(descriptor)
        quiet = termios.tcgetattr(descriptor)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(descriptor, termios.TCSAFLUSH, quiet)
        try:
            yield
        finally:
            termios.tcsetattr(descriptor, termios.TCSAFLUSH, before)

    def run(self, entered: dict) -> int:
        self.say("Alga appliance setup (console). Type 'back' to return to the previous "
                 "question,")
        self.say("'cancel' to leave without changing anything. Enter keeps the [default].")
        try:
            self.questions(entered)
            if not self.review(entered):
                return self.run(entered)
        except Cancelled:
            self.say("\nCancelled: nothing was started.")
            return 130
        try:
            submitted = setup_request.submit(api_answers(entered), self.node_ip, self.root)
        except setup_request.SetupBusy as exc:
            self.say(f"Setup did not start: {exc}.")
            return 1
        self.say("\nSetup started. Progress (it also shows at http://<node-ip>:8080/progress):")
        return self.follow(submitted.request_id)

    def offer_resume(self, install: dict) -> bool:
        """Show the interrupted run; whether the admin resumes it (else: set up again)."""
        for line in failure_view(install):
            self.say(line)
        try:
            reply = self.ask("\nResume setup? yes/no [yes]: ").lower() or "yes"
        except Cancelled:
            return False
        return reply in ("yes", "y")

    def resume(self) -> int:
        try:
            request_id = setup_request.submit_resume(self.root)
        except setup_request.SetupBusy as exc:
            self.say(f"Setup did not resume: {exc}.")
            return 1
        self.say("\nSetup resumed. Progress (it also shows at http://<node-ip>:8080/progress):")
        return self.follow(request_id)

    def follow(self, request_id: str | None) -> int:
        return 0 if progress.follow(self.root, request_id, self.show_new_lines).succeeded else 1

    def show_new_lines(self, lines: list[str]) -> None:
        """On a serial line, print only what changed: a running log, not a redrawn screen."""
        for line in lines:
            if line and line not in self.printed:
                self.printed.add(line)
                self.say(line)

    def questions(self, entered: dict) -> None:
        asked: list[int] = []
        index = 0
        while index < len(QUESTIONS):
            question = QUESTIONS[index]
            if not question.asked_when(entered):
                index += 1
                continue
            reply = self.ask_one(question, entered)
            if reply is None:  # back
                index = asked.pop() if asked else 0
                continue
            previous = entered.get(question.field, "")
            entered[question.field] = reply
            if question.warning_when == reply:
                self.say(textwrap.fill(f"Warning: {question.warning}", WIDTH))
            errors = errors_for(question.field, entered, self.node_ip, self.stored,
                                self.admin_user)
            for message in errors:
                self.say(f"Error: {message}")
            if errors and question.retry_from:  # both again: either may be the mistyped one
                index = index_of(question.retry_from)
                del asked[asked.index(index):]
                for field in (question.retry_from, question.field):
                    entered[field] = ""
            elif errors:  # ask again, offering what was there before as the default
                entered[question.field] = previous
            else:
                asked.append(index)
                index += 1

    def ask_one(self, question: Question, entered: dict) -> str | None:
        self.say(f"\n{question.title}")
        if question.hint:
            self.say(f"  ({question.hint})")
        if question.field == "dns_mode":
            detected = ", ".join(self.resolvers) or "none detected"
            self.say(f"  This network's resolvers: {detected}")
        default = entered.get(question.field, "")
        shown = default
        if question.secret:  # never shown; say what Enter keeps
            shown = "as typed before" if default else "stored" if self.keeps_password(
                question, entered) else ""
        if question.lines:
            return self.ask_lines(default)
        while True:
            options = f" {'/'.join(question.choices)}" if question.choices else ""
            reply = self.ask(f"{options.strip() or '>'} [{shown}]: ", question.secret)
            if not question.secret and reply.lower() == "back":
                return None
            value = reply or default
            if not question.choices:
                return value
            matches = [c for c in question.choices if c.startswith(value.lower())] if value \
                else []
            if len(matches) == 1:
                return matches[0]
            self.say(f"Error: answer one of: {', '.join(question.choices)}")

    def ask_lines(self, default: str) -> str | None:
        """Several lines, one item each, until an empty line; an empty first line keeps
        `default`, `none` clears it, `back` goes back."""
        count = len(default.splitlines())
        self.say("  One per line; an empty line ends the list. Type 'none' for none.")
        first = self.ask(f"> [{f'{count} as before' if count else 'none'}]: ")
        if first.lower() == "back":
            return None
        if not first:
            return default
        if first.lower() == "none":
            return ""
        lines = [first]
        while line := self.ask(f"{len(lines) + 1} (empty line ends)> "):
            lines.append(line)
        return "\n".join(lines)

    def keeps_password(self, question: Question, entered: dict) -> bool:
        """Whether an empty answer to the password `question` keeps a stored password."""
        if question.field == "admin_password":
            return admin_password_stored(self.stored)
        stored = self.stored if password_stored(self.stored) else None
        return bool(stored) and (entered.get("proxy_user") == stored["proxy"]["user"])

    def review(self, entered: dict) -> bool:
        """Show what setup will use; True to start, False to go through the questions again."""
        try:
            inputs = parse_setup_inputs(api_answers(entered), self.node_ip, self.stored,
                                        admin_user=self.admin_user)
        except InputErrors as exc:  # cannot happen after per-question checks; never hide it
            self.say(f"Error: {exc}")
            return False
        self.say("\nReview")
        for label, value in review_lines(inputs, self.resolvers, self.root, self.admin_user):
            self.say(f"  {label:<18}{value}")
        self.say(textwrap.fill(REVIEW_NOTE, WIDTH))
        while True:
            reply = self.ask("Start setup? yes/back [yes]: ").lower() or "yes"
            if reply in ("yes", "y"):
                return True
            if reply in ("back", "b", "no", "n"):
                return False


class PlainMenu:
    """The console menu in numbered lines: the banner's text, then the entries; Enter alone
    shows it again (with what has changed)."""

    def __init__(self, root: Path | None, stdin: TextIO = sys.stdin,
                 stdout: TextIO = sys.stdout):
        self.lines = PlainConsole(root, "", [], stdin, stdout)
        self.encoding = "ascii"  # what PlainConsole writes: a serial line may know no more

    def choose(self, entries: list, header: list[str], note: str) -> str | None:
        """The chosen entry's id; None to draw the menu again. EOFError at end of input."""
        say = self.lines.say
        say("\nAlga appliance console\n======================")
        for line in header:
            say(line)
        say("")
        if note:
            say(textwrap.fill(note, WIDTH))
            say("")
        for number, entry in enumerate(entries, 1):
            say(f"  {number}. {entry.label}")
        reply = self.read(f"Choose 1-{len(entries)} (Enter shows this again): ")
        if not reply:
            return None
        if reply.isdigit() and 1 <= int(reply) <= len(entries):
            return entries[int(reply) - 1].id
        say(f"Error: type a number from 1 to {len(entries)}.")
        return None

    def read(self, prompt: str) -> str:
        self.lines.write(prompt)
        line = self.lines.stdin.readline()
        if not line:
            raise EOFError
        return line.strip()

    def page(self, title: str, lines: list[str], code: list[str] = ()) -> None:
        """`lines` wrapped to the width, then `code` (a QR code's lines) as they are."""
        self.lines.say(f"\n{title}\n{'-' * len(title)}")
        for line in lines:
            indent = " " * (len(line) - len(line.lstrip()) + 2)  # wrapped under itself
            # A link is never cut: it is copied from here, or read on a phone's screen.
            for part in textwrap.wrap(line, WIDTH, subsequent_indent=indent,
                                      break_on_hyphens=False, break_long_words=False) or [""]:
                self.lines.say(part)
        for line in code:
            self.lines.say(line)

    def confirm(self, title: str, lines: list[str], question: str) -> bool:
        self.page(title, lines)
        return self.read(f"{question} yes/no [no]: ").lower() in ("yes", "y")

    def watch(self, title: str, poll) -> None:
        """Print new progress lines until `poll` says it has ended (Ctrl-C leaves)."""
        self.lines.say(f"\n{title}\n{'-' * len(title)}")
        self.lines.printed.clear()  # a line the last run printed is new in this one
        while True:
            lines, ended = poll()
            self.lines.show_new_lines(lines)
            if ended:
                return
            time.sleep(progress.POLL_SECONDS)

    def before_login(self) -> None:
        self.lines.say("\nLog in with the admin user and its password; log out (exit) to "
                       "come back here.")
