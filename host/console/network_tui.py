"""The console's Network entry, full screen (urwid, as tui.SetupTui): the interfaces, the
settings form, the review, then the countdown: Keep, or anything else and the change is
rolled back when it runs out. The flow and its checks are network_screen's and netconfig's."""

from pathlib import Path

import urwid

from host.console import banner
from host.console.network_screen import (
    KEEP_PROMPT,
    MODE_QUESTION,
    STATIC_QUESTIONS,
    VLAN_QUESTION,
    describe,
    seconds_left,
    setup_urls,
    used_answers,
)
from host.console.tui import EXIT_CANCELLED, _button, framed_loop
from host.core.validation import InputErrors
from host.net import netchange, netconfig

KEYS_HELP = " Arrows: move   Enter: choose (in a field: Review)   Esc: back   F10: cancel"


class NetworkTui:
    def __init__(self, root: Path | None, window: int = netchange.CONFIRM_SECONDS):
        self.root, self.window = root, window
        self.result = EXIT_CANCELLED
        self.mode = "choose"  # then "form", "review", "countdown", "done"
        self.interfaces = netconfig.wired_interfaces(root)
        self.settings = netconfig.read_settings(root)
        self.answers: dict = {}
        self.frame, self.loop = framed_loop(" Alga appliance: network", KEYS_HELP, self.keys)

    def run(self) -> int:
        waiting = netchange.pending(self.root)
        if waiting:
            self.show_countdown([f"A network change is waiting for confirmation: "
                                 f"{waiting['summary']}."], seconds_left(waiting))
        elif not self.interfaces:
            self.show_done(["No wired network interface was found: check the VM's network "
                            "adapter."], 1)
        else:
            self.show_choose()
        self.loop.run()
        return self.result

    def screen(self, widgets: list, buttons: list[tuple[str, object]]) -> None:
        row = urwid.Columns([(len(label) + 4, _button(label, action))
                             for label, action in buttons], dividechars=2)
        self.pile = urwid.Pile([*widgets, urwid.Divider(), row])
        self.frame.body = urwid.LineBox(urwid.Filler(urwid.Padding(self.pile, left=1, right=1),
                                                     valign="top"))
        self.pile.focus_position = next(i for i, (w, _) in enumerate(self.pile.contents)
                                        if w.selectable())

    # --- screens -------------------------------------------------------------------------

    def show_choose(self) -> None:
        self.mode = "choose"
        self.group: list = []
        widgets = [urwid.Text(("title", "Which interface?")), urwid.Divider()]
        chosen = self.answers.get("interface", self.interfaces[0].name)
        for interface in self.interfaces:
            label = describe(interface, netconfig.settings_of(self.settings, interface.name))
            widgets.append(urwid.AttrMap(urwid.RadioButton(self.group, label,
                                                           state=interface.name == chosen),
                                         None, "focus"))
        self.screen(widgets, [("Next", lambda _: self.chosen()),
                              ("Cancel", lambda _: self.cancel())])

    def chosen(self) -> None:
        name = next(i.name for i, b in zip(self.interfaces, self.group, strict=True) if b.state)
        if name != self.answers.get("interface"):
            self.answers = netconfig.as_answers(name, netconfig.settings_of(self.settings, name))
        self.show_form()

    def show_form(self, errors: dict | None = None) -> None:
        self.mode = "form"
        errors = errors or {}
        widgets = [urwid.Text(("title", f"Addressing of {self.answers['interface']}")),
                   urwid.Text(("hint", MODE_QUESTION[2]))]
        self.modes: list = []
        for mode in netconfig.MODES:
            button = urwid.RadioButton(self.modes, "DHCP" if mode == "dhcp" else "static",
                                       state=self.answers["mode"] == mode)
            widgets.append(urwid.AttrMap(button, None, "focus"))
        widgets.append(urwid.Divider())
        self.edits = {}
        for field, title, hint in (*STATIC_QUESTIONS, VLAN_QUESTION):
            edit = urwid.Edit(("title", f"{title:<20}"), self.answers.get(field, ""))
            self.edits[field] = edit
            widgets.append(urwid.AttrMap(edit, None, "focus"))
            if field in errors:
                widgets.append(urwid.Text(("error", f"  {errors[field]}")))
            elif field == "vlan" or field == "ipv4_address":
                widgets.append(urwid.Text(("hint", f"  {hint}")))
        widgets.append(urwid.Text(("hint", "The address fields are used with static only.")))
        for field in set(errors) - set(self.edits):
            widgets.append(urwid.Text(("error", f"{field}: {errors[field]}")))
        self.screen(widgets, [("Review", lambda _: self.review()),
                              ("Back", lambda _: self.show_choose()),
                              ("Cancel", lambda _: self.cancel())])

    def review(self) -> None:
        self.answers["mode"] = next(m for m, b in zip(netconfig.MODES, self.modes, strict=True)
                                    if b.state)
        self.answers.update({field: edit.edit_text.strip() for field, edit in self.edits.items()})
        names = [interface.name for interface in self.interfaces]
        try:
            interface, self.wanted = netconfig.parse_settings(used_answers(self.answers), names)
        except InputErrors as exc:
            self.show_form({error.field: error.message for error in exc.errors})
            return
        self.mode = "review"
        self.error = urwid.Text("")
        self.screen([urwid.Text(("title", "Review the change")),
                     urwid.Text(netchange.summary(interface, self.wanted)), urwid.Divider(),
                     urwid.Text(f"It is applied at once and rolled back unless you keep it "
                                f"within {self.window} s."), self.error],
                    [("Apply", lambda _: self.apply()), ("Back", lambda _: self.show_form()),
                     ("Cancel", lambda _: self.cancel())])

    def apply(self) -> None:
        try:
            change = netchange.apply(self.answers["interface"], self.wanted, self.root,
                                     self.window)
        except netchange.ChangeRefused as exc:
            self.error.set_text(("error", f"Not applied: {exc}"))
            return
        lines = [f"Applied: {change['summary']}", *self.banner_lines()]
        self.show_countdown(lines, seconds_left(change))  # the timer's deadline

    def banner_lines(self) -> list[str]:
        problem = banner.refresh(self.root)
        return [f"The setup page is now at {url}" for url in setup_urls(self.root)] + \
            ([f"Note: {problem}"] if problem else [])

    def show_countdown(self, lines: list[str], seconds: int) -> None:
        self.mode = "countdown"
        self.left = seconds
        self.clock = urwid.Text("")
        self.screen([*(urwid.Text(line) for line in lines), urwid.Divider(),
                     urwid.Text(("title", KEEP_PROMPT.removesuffix(" [y/N]"))), self.clock],
                    [("Keep", lambda _: self.keep()), ("Roll back", lambda _: self.roll_back(
                        "not kept at the console"))])
        self.pile.focus.focus_position = 1  # Roll back: Enter alone never keeps a change
        self.tick()

    def tick(self, *_) -> None:
        if self.mode != "countdown":
            return
        if self.left <= 0:
            self.roll_back(netchange.TIMED_OUT)
            return
        self.clock.set_text(("warning", f"Rolled back in {self.left} s unless you choose Keep."))
        self.left -= 1
        self.loop.set_alarm_in(1, self.tick)

    def keep(self) -> None:
        try:
            change = netchange.confirm(self.root)
        except netchange.NothingPending:
            self.show_done(["Too late: the change was already rolled back."], 1)
            return
        self.show_done([f"Kept: {change['summary']}", *self.banner_lines()], 0)

    def roll_back(self, reason: str) -> None:
        try:
            netchange.rollback(self.root, reason=reason)
            said = "Rolled back to the previous configuration."
        except netchange.NothingPending:
            said = "The change was already rolled back."
        except netchange.hostcmd.CommandFailed as exc:
            said = f"The previous files are back but could not be applied ({exc}): reboot."
        problem = banner.refresh(self.root)
        self.show_done([said, *([f"Note: {problem}"] if problem else [])], 1)

    def show_done(self, lines: list[str], result: int) -> None:
        self.mode, self.result = "done", result
        self.screen([*(urwid.Text(line) for line in lines)], [("Close", lambda _: self.close())])

    # --- keys ----------------------------------------------------------------------------

    def cancel(self) -> None:
        self.result = EXIT_CANCELLED
        raise urwid.ExitMainLoop

    def close(self) -> None:
        raise urwid.ExitMainLoop

    def keys(self, key: str) -> None:
        if key == "f10" and self.mode in ("choose", "form", "review"):
            self.cancel()
        if key == "enter" and self.mode == "form":  # Enter in a field: Review
            self.review()
        if key == "esc" and self.mode == "form":
            self.show_choose()
        if key == "esc" and self.mode == "review":
            self.show_form()
