"""Full-screen console setup (urwid, the toolkit Ubuntu's own installer uses): one screen
per question, then the review, then live progress. Esc goes back, F10 cancels."""

import sys
from pathlib import Path

import urwid

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
from host.setup.inputs import admin_password_stored, parse_setup_inputs, password_stored
from host.setup.progress import failure_view, settled

PALETTE = [
    ("header", "white,bold", "dark blue"),
    ("footer", "black", "light gray"),
    ("title", "bold", ""),
    ("hint", "dark cyan", ""),
    ("warning", "yellow,bold", ""),
    ("error", "light red,bold", ""),
    ("button", "black", "light gray"),
    ("focus", "white,bold", "dark blue"),
]
KEYS_HELP = " Tab/arrows: move   Enter: choose   Esc: back   F10: cancel"
CHOICE_LABELS = {"stable": "stable (recommended)", "nightly": "nightly - TESTING only",
                 "system": "this network's resolvers (recommended)",
                 "custom": "custom DNS servers", "no": "no", "yes": "yes"}
EXIT_CANCELLED = 130


def framed_loop(title: str, help_text: str, keys) -> tuple[urwid.Frame, urwid.MainLoop]:
    """A full screen with `title` above and `help_text` below, its body set screen by
    screen; `keys` gets the keys no widget took."""
    frame = urwid.Frame(urwid.SolidFill(" "), header=urwid.AttrMap(urwid.Text(title), "header"),
                        footer=urwid.AttrMap(urwid.Text(help_text), "footer"))
    return frame, urwid.MainLoop(frame, PALETTE, unhandled_input=keys, handle_mouse=False)


class SetupTui:
    def __init__(self, root: Path | None, node_ip: str, resolvers: list[str], entered: dict,
                 busy: str | None, install: dict | None, resume: bool = False):
        self.root, self.node_ip, self.resolvers, self.entered = root, node_ip, resolvers, entered
        self.busy, self.install, self.resume_offered = busy, install, resume
        # The last setup's inputs: the proxy password and admin password hash Enter keeps.
        self.stored = state.read(state.SETUP_INPUTS, root)
        self.admin_user = credentials.admin_user(root)
        self.asked: list[int] = []
        self.index = 0
        self.result = EXIT_CANCELLED
        self.mode = "questions"  # then "review", "progress", "done"
        self.following: str | None = None  # the request id the progress screen follows
        self.value = None  # reads the current question's answer from its widgets
        self.frame, self.loop = framed_loop(" Alga appliance setup", KEYS_HELP, self.keys)

    def run(self) -> int:
        if self.busy and not settled(self.install):
            self.show_progress(None, f"Setup is already under way ({self.busy}).")
        elif self.busy:
            preflight = state.read(state.PREFLIGHT_REPORT, self.root)
            self.show_lines([*failure_view(self.install, preflight), "",
                             f"Setup cannot start from here: {self.busy}."], done=True)
        elif self.resume_offered:
            self.show_resume()
        else:
            self.show_question()
        self.loop.run()
        return self.result

    # --- screens -----------------------------------------------------------------------

    def screen(self, widgets: list, buttons: list[tuple[str, object]]) -> None:
        row = urwid.Columns([(len(label) + 4, _button(label, action))
                             for label, action in buttons], dividechars=2)
        self.pile, self.row = urwid.Pile([*widgets, urwid.Divider(), row]), row
        self.frame.body = urwid.LineBox(urwid.Filler(urwid.Padding(self.pile, left=1, right=1),
                                                     valign="top"))
        self.pile.focus_position = self.stops()[0]

    def stops(self) -> list[int]:
        return [i for i, (widget, _) in enumerate(self.pile.contents) if widget.selectable()]

    def tab(self, step: int) -> None:
        """Tab through every field and then each button, in order (arrows move by
        position, which from a text field can land on any button)."""
        stops = [(i, None) for i in self.stops()[:-1]]
        stops += [(self.stops()[-1], c) for c in range(len(self.row.contents))]
        current = (self.pile.focus_position,
                   self.row.focus_position if self.pile.focus is self.row else None)
        position, column = stops[(stops.index(current) + step) % len(stops)]
        self.pile.focus_position = position
        if column is not None:
            self.row.focus_position = column

    def show_question(self) -> None:
        self.mode = "questions"
        question = QUESTIONS[self.index]
        widgets = [urwid.Text(("title", question.title))]
        if question.hint:
            widgets.append(urwid.Text(("hint", question.hint)))
        if question.field == "dns_mode":
            detected = ", ".join(self.resolvers) or "none detected"
            widgets.append(urwid.Text(("hint", f"This network's resolvers: {detected}")))
        widgets.append(urwid.Divider())
        self.warning = urwid.Text("")
        self.error = urwid.Text("")
        self.value = None
        self.value = self.input_widgets(question, widgets)
        widgets += [urwid.Divider(), self.warning, self.error]
        self.update_warning(question)
        self.screen(widgets, [("Next", lambda _: self.next()), ("Back", lambda _: self.back()),
                              ("Cancel", lambda _: self.cancel())])

    def input_widgets(self, question: Question, widgets: list):
        current = self.entered.get(question.field, "")
        if question.secret:  # masked, never filled from what is stored, kept as typed
            stored = admin_password_stored(self.stored) if question.field == "admin_password" \
                else question.field == "proxy_password" and password_stored(self.stored)
            if stored:
                widgets.append(urwid.Text(("hint", "A password is stored: leave this empty "
                                                   "to keep it.")))
            edit = urwid.Edit(("title", "> "), current, mask="*")
            urwid.connect_signal(edit, "postchange", lambda *_: self.error.set_text(""))
            widgets.append(urwid.AttrMap(edit, None, "focus"))
            return lambda: edit.edit_text
        if question.lines:  # Enter starts a new line; Tab reaches Next
            widgets.append(urwid.Text(("hint", "Enter: new line   Tab: to the buttons")))
            edit = urwid.Edit(("title", "> "), current, multiline=True)
            urwid.connect_signal(edit, "postchange", lambda *_: self.error.set_text(""))
            widgets.append(urwid.AttrMap(edit, None, "focus"))
            return lambda: "\n".join(line.strip() for line in edit.edit_text.splitlines()
                                      if line.strip())
        if not question.choices:
            edit = urwid.Edit(("title", "> "), current)
            urwid.connect_signal(edit, "postchange", lambda *_: self.error.set_text(""))
            widgets.append(urwid.AttrMap(edit, None, "focus"))
            return lambda: edit.edit_text.strip()
        group: list = []
        for choice in question.choices:
            button = urwid.RadioButton(group, CHOICE_LABELS[choice], state=choice == current)
            urwid.connect_signal(button, "postchange", lambda *_: self.update_warning(question))
            widgets.append(urwid.AttrMap(button, None, "focus"))
        return lambda: next(c for c, b in zip(question.choices, group, strict=True) if b.state)

    def update_warning(self, question: Question) -> None:
        picked = self.value() if question.choices and self.value else None
        shown = question.warning_when is not None and picked == question.warning_when
        self.warning.set_text(("warning", f"Warning: {question.warning}") if shown else "")

    def show_review(self) -> None:
        self.mode = "review"
        inputs = parse_setup_inputs(api_answers(self.entered), self.node_ip, self.stored,
                                    admin_user=self.admin_user)
        widgets = [urwid.Text(("title", "Review"))]
        # A long value wraps under itself, not under the labels.
        widgets += [urwid.Columns([(18, urwid.Text(label)), urwid.Text(value)])
                    for label, value in review_lines(inputs, self.resolvers, self.root,
                                                     self.admin_user)]
        widgets += [urwid.Divider(), urwid.Text(REVIEW_NOTE)]
        self.error = urwid.Text("")
        widgets.append(self.error)
        self.screen(widgets, [("Start setup", lambda _: self.submit()),
                              ("Back", lambda _: self.back()),
                              ("Cancel", lambda _: self.cancel())])

    def show_resume(self) -> None:
        """An interrupted run: resume it, or answer the questions again."""
        self.mode = "review"  # buttons only; Esc and Tab as on the review
        widgets = [urwid.Text(("title", "Setup was interrupted")),
                   *(urwid.Text(line) for line in failure_view(self.install))]
        self.error = urwid.Text("")
        widgets.append(self.error)
        self.screen(widgets, [("Resume", lambda _: self.resume()),
                              ("Set up again", lambda _: self.show_question()),
                              ("Cancel", lambda _: self.cancel())])

    def resume(self) -> None:
        try:
            request_id = setup_request.submit_resume(self.root)
        except (setup_request.SetupBusy, PermissionError) as exc:
            self.error.set_text(("error", f"Setup did not resume: {exc}"))
            return
        self.show_progress(request_id)

    def show_lines(self, lines: list[str], done: bool) -> None:
        """A scrolling page of text: progress, or the final result (Enter closes)."""
        self.mode = "done" if done else "progress"
        self.walker = urwid.SimpleFocusListWalker([])
        self.set_lines(lines)
        self.frame.body = urwid.LineBox(urwid.Padding(urwid.ListBox(self.walker), left=1,
                                                      right=1))
        help_text = " Enter: close   Up/Down/PgUp/PgDn: scroll" if done else \
            " F10: leave (setup goes on)   Up/Down/PgUp/PgDn: scroll"
        self.frame.footer = urwid.AttrMap(urwid.Text(help_text), "footer")

    def set_lines(self, lines: list[str]) -> None:
        """Replace the text, keeping the admin's scroll position (the top at first)."""
        position = self.walker.focus if self.walker else 0
        self.walker[:] = [urwid.Text(("title", "Setup progress")),
                          *(urwid.Text(line) for line in lines)]
        self.walker.set_focus(min(position, len(self.walker) - 1))

    def show_progress(self, request_id: str | None, note: str = "") -> None:
        self.following, self.note = request_id, note
        self.show_lines(["Waiting for setup to start..."], done=False)
        self.refresh_progress()

    def refresh_progress(self, *_) -> None:
        now = progress.poll(self.root, self.following)
        lines = [self.note, "", *now.lines] if self.note else now.lines
        if now.settled:
            self.result = 0 if now.succeeded else 1
            self.show_lines(lines, done=True)
            return
        self.set_lines(lines)
        self.loop.set_alarm_in(progress.POLL_SECONDS, self.refresh_progress)

    # --- actions -----------------------------------------------------------------------

    def next(self) -> None:
        question = QUESTIONS[self.index]
        self.entered[question.field] = self.value()
        errors = errors_for(question.field, self.entered, self.node_ip, self.stored,
                            self.admin_user)
        if errors and question.retry_from:  # both again: either may be the mistyped one
            for field in (question.retry_from, question.field):
                self.entered[field] = ""
            self.index = index_of(question.retry_from)
            del self.asked[self.asked.index(self.index):]
            self.show_question()
        if errors:
            self.error.set_text(("error", "\n".join(f"Error: {m}" for m in errors)))
            return
        self.asked.append(self.index)
        self.index += 1
        while self.index < len(QUESTIONS) and not QUESTIONS[self.index].asked_when(
                self.entered):
            self.index += 1
        if self.index == len(QUESTIONS):
            self.show_review()
        else:
            self.show_question()

    def back(self) -> None:
        if self.asked:
            self.index = self.asked.pop()
            self.show_question()

    def submit(self) -> None:
        try:
            submitted = setup_request.submit(api_answers(self.entered), self.node_ip, self.root)
        except (setup_request.SetupBusy, PermissionError) as exc:
            self.error.set_text(("error", f"Setup did not start: {exc}"))
            return
        self.show_progress(submitted.request_id)

    def cancel(self) -> None:
        self.result = EXIT_CANCELLED
        raise urwid.ExitMainLoop

    def close(self) -> None:
        raise urwid.ExitMainLoop

    def keys(self, key: str) -> None:
        if key in ("tab", "shift tab") and self.mode != "progress":
            self.tab(1 if key == "tab" else -1)
        if key == "enter" and self.mode == "questions":  # Enter in a text field: Next
            self.next()
        if key in ("enter", "q") and self.mode == "done":
            self.close()
        if key == "f10":
            if self.mode == "questions" or self.mode == "review":
                self.cancel()
            self.result = 0 if self.mode == "progress" else self.result  # setup goes on
            self.close()
        if key == "esc" and self.mode in ("questions", "review"):
            self.back()


def _button(label: str, action) -> urwid.Widget:
    return urwid.AttrMap(urwid.Button(label, on_press=action), "button", "focus")



MENU_HELP = " Up/Down: move   Enter: choose"
PAGE_HELP = " Up/Down/PgUp/PgDn: scroll   Esc: back to the menu"
CODE_HELP = " Enter or Esc: back"


class MenuTui:
    """The console menu, full screen. Each screen is a MainLoop of its own, so the setup
    flow and login have the terminal to themselves in between."""

    def __init__(self, root: Path | None, on_vt: bool, service: bool):
        self.root, self.on_vt, self.service = root, on_vt, service
        self.encoding = sys.stdout.encoding
        self.enter_leaves = False

    def show(self, title: str, rows: list, help_text: str, focus: int = 0, poll=None):
        """`rows` in a scrolling box until a button or Esc ends it: what it ended with.
        `poll` runs every second while it shows."""
        self.walker = urwid.SimpleFocusListWalker(rows)
        self.walker.set_focus(focus)
        self.result = None
        body = urwid.LineBox(urwid.Padding(urwid.ListBox(self.walker), left=1, right=1))
        frame = urwid.Frame(body, header=urwid.AttrMap(urwid.Text(f" {title}"), "header"),
                            footer=urwid.AttrMap(urwid.Text(help_text), "footer"))
        self.loop = urwid.MainLoop(frame, PALETTE, unhandled_input=self.keys,
                                   handle_mouse=False)
        if poll:
            def tick(*_) -> None:
                poll()
                self.loop.set_alarm_in(progress.POLL_SECONDS, tick)
            self.loop.set_alarm_in(progress.POLL_SECONDS, tick)
        self.loop.run()
        return self.result

    def finish(self, value) -> None:
        self.result = value
        raise urwid.ExitMainLoop

    def keys(self, key: str) -> None:
        if key == "esc" or (key == "enter" and self.enter_leaves):
            self.finish(None)

    def choose(self, entries: list, header: list[str], note: str) -> str | None:
        from host.console import banner, menu  # what app.py drew the menu from

        def rows(lines: list[str]) -> list:
            return [*(urwid.Text(line) for line in lines), urwid.Divider(),
                    *([urwid.Text(("error", note)), urwid.Divider()] if note else []),
                    *(_button(e.label, lambda _, e=e: self.finish(e.id)) for e in entries)]

        def redraw_on_change() -> None:
            now = menu.offered(menu.situation(self.root, self.service))
            if [e.id for e in now] != [e.id for e in entries]:
                self.finish(None)  # other entries: app.py draws the menu anew
            lines = banner.now(self.root)
            if [w.text for w in self.walker[:len(lines)]] != lines:
                from_end = len(self.walker) - self.walker.focus  # the same entry keeps it
                self.walker[:] = rows(lines)
                self.walker.set_focus(len(self.walker) - from_end)

        shown = rows(header)
        return self.show("Alga appliance console", shown, MENU_HELP,
                         focus=len(shown) - len(entries), poll=redraw_on_change)

    def page(self, title: str, lines: list[str], code: list[str] = ()) -> None:
        """`lines`, and beside them `code` (a QR code's lines) when there is one: side by
        side, the link's code (19 lines at most) fits an 80x24 screen whole."""
        if not code:
            rows = [*(urwid.Text(line) for line in lines), urwid.Divider(),
                    _button("Back", lambda _: self.finish(None))]
            self.show(title, rows, PAGE_HELP, focus=len(rows) - 1)
            return
        picture = urwid.Text("\n".join(code), wrap="clip")
        beside = urwid.Columns([(len(code[0]), picture),
                                urwid.Padding(urwid.Text("\n".join(lines)), left=2)])
        self.enter_leaves = True  # nothing on this screen takes Enter
        try:
            self.show(title, [beside], CODE_HELP)
        finally:
            self.enter_leaves = False

    def confirm(self, title: str, lines: list[str], question: str) -> bool:
        rows = [*(urwid.Text(line) for line in lines), urwid.Divider(),
                urwid.Text(("title", question)),
                _button("No, back to the menu", lambda _: self.finish(False)),
                _button("Yes", lambda _: self.finish(True))]
        return bool(self.show(title, rows, PAGE_HELP, focus=len(rows) - 2))

    def watch(self, title: str, poll) -> None:
        """Progress lines from `poll` until it says they have ended; Esc leaves earlier."""
        def update() -> None:
            lines, ended = poll()
            rows = [urwid.Text(line) for line in lines]
            if ended:
                rows += [urwid.Divider(), _button("Back", lambda _: self.finish(None))]
            if [getattr(w, "text", None) for w in self.walker] != \
                    [getattr(w, "text", None) for w in rows]:
                self.walker[:] = rows
                self.walker.set_focus(len(rows) - 1)

        lines, _ = poll()
        self.show(title, [urwid.Text(line) for line in lines], PAGE_HELP, poll=update)

    def before_login(self) -> None:
        print("\033[2J\033[H" "Log in with the admin user and its password; log out (exit) "
              "to come back to the menu.", flush=True)
        if self.on_vt:
            print("Alt+F2 also gives a login prompt, on tty2.", flush=True)
