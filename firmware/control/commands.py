# The firmware command table (FIG. 4's stored commands, as the console and the host CLI reach
# them): name -> fn(ctl, args) -> dict, each raising CmdError. The commands live by subject in
# commands_*.py and use only the controller's public methods and attributes.
from control import commands_drives as drives
from control import commands_hostmap as hostmap
from control import commands_snapshot as snap
from control import commands_diag as diag
from control import commands_lop as lop
from control import commands_pair as pair

COMMANDS = {
    "status": diag.status, "sd_list": drives.sd_list, "sd_create": drives.sd_create,
    "sd_delete": drives.sd_delete, "sd_policy": drives.sd_policy, "log_set": drives.log_set,
    "log_clear": drives.log_clear, "lun_list": hostmap.lun_list, "lun_map": hostmap.lun_map,
    "lun_unmap": hostmap.lun_unmap, "snapshot_start": snap.snapshot_start,
    "snapshot_stop": snap.snapshot_stop, "snapshot_status": snap.snapshot_status,
    "snapshot_map": snap.snapshot_map, "disk_list": drives.disk_list,
    "disk_fail": drives.disk_op("fail"), "disk_remove": drives.disk_op("remove"),
    "disk_replace": drives.disk_op("replace"), "events": diag.events, "cdb": diag.cdb,
    "chap_set": hostmap.chap_set, "chap_get": hostmap.chap_get, "mask_list": hostmap.mask_list,
    "mask_set": hostmap.mask_set, "mask_clear": hostmap.mask_clear, "nvram_dump": diag.nvram_dump,
    "params_get": drives.params_get, "params_set": drives.params_set,
    "lop_start": lop.lop_start, "lop_status": lop.lop_status, "lop_stop": lop.lop_stop,
    "lop_clear": lop.lop_clear, "pair_status": pair.pair_status, "sd_owner": pair.sd_owner,
    "pair_failback": pair.pair_failback, "pair_fail": pair.pair_fail, "pair_link": pair.pair_link,
}
