// Linux headers and calls that Swift's Glibc module does not export.
#pragma once
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>
#include <malloc.h>

/// accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC): needs _GNU_SOURCE, set in shims.c.
int clinux_accept_nonblocking(int fd);
