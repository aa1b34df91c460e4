"""The interactive shell's prompt (prompt_toolkit): history file and Tab completion. Kept apart
from shell.py because importing prompt_toolkit takes 0.2 s, which only the interactive shell pays."""
import os

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory
from prompt_toolkit.patch_stdout import patch_stdout


class LineCompleter(Completer):
    """Completion of the last word from `candidates(text before the cursor)`."""

    def __init__(self, candidates):
        self.candidates = candidates

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        word = "" if not text or text[-1].isspace() else text.split()[-1]
        for c in self.candidates(text):
            yield Completion(c, start_position=-len(word))


class Prompt:
    """A prompt with history in ~/.raidboard_history (or $RAIDBOARD_HISTORY) completing from
    `candidates`; what other threads print while it waits (the board's events) goes above it."""

    def __init__(self, candidates):
        path = os.environ.get("RAIDBOARD_HISTORY") or os.path.expanduser("~/.raidboard_history")
        try:
            history = FileHistory(path)
        except OSError:
            history = None
        self.session = PromptSession(history=history, completer=LineCompleter(candidates),
                                     complete_while_typing=False)

    def ask(self, text):
        with patch_stdout(raw=True):
            return self.session.prompt(text)

