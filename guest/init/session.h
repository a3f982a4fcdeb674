// The guest init's event loop after boot: serves exec requests from the
// host on the control channel, relays each process's stdin, stdout and
// stderr as flow-controlled frames, reaps every process in the VM (the init
// is PID 1), and returns when the host asks for shutdown or goes away.
#pragma once

#include "common/error.h"
#include "protocol/channel.h"

namespace zwrm::guest {

// Runs until shutdown. Returns an error only when the channel broke (a
// malformed frame or an I/O error); the caller powers off either way.
Status run_session(protocol::Channel& channel);

}  // namespace zwrm::guest
