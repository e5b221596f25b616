// libsystemd (Debian: libsystemd-dev): the journal API and sd_notify.
#pragma once
#include <systemd/sd-journal.h>
#include <systemd/sd-daemon.h>
