# What a long operation can answer instead of working. lop/ sits below the SCSI core and the
# command table: each of them translates these into its own words (sense data, CmdError).


class Retry(Exception):
    # no buffer slot free this slice: try again at the next one
    pass


class Refused(Exception):
    # a start that cannot be done: status word (Table 7 vocabulary), command-table code, message
    def __init__(self, word, code, msg):
        super().__init__(msg)
        self.word, self.code, self.msg = word, code, msg

