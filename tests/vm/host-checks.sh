# SPDX-License-Identifier: MIT
# Host-side halves of the guest scenarios (sourced by tests/vm/run): a
# function host_SCENARIO VER SCEN LOG prepares the disks, boots, reports
# the guest's lines and then checks the disk images on the host.
