// Linux headers that Swift's Glibc module does not export.
#pragma once
#include <signal.h>
#include <sys/signalfd.h>
