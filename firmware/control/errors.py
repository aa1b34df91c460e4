# The one error of the firmware command table, the console and the line protocol: a stable
# upper-case code (the CLI and the menus key on it) and a message that says what to do.


class CmdError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message
