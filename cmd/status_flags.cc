// The status server's flags (StatusFlags in cmd/commands.h), shared by `controller` and
// `up`. What they mean is controller/status/status_server.h and docs/status.md.
#include "cmd/commands.h"

namespace lk::cmd {

void AddStatusFlags(CLI::App* cmd, StatusFlags& flags) {
  cmd->add_option("--status-addr", flags.addr,
                  "HOST:PORT of the status server (/healthz /readyz /status /doctor /metrics /), "
                  "or off. Loopback unless --auth-token-file or --insecure is given")
      ->capture_default_str();
  cmd->add_option("--auth-token-file", flags.auth_token_file,
                  "File (mode 0600) holding the bearer token the status server requires "
                  "(Authorization: Bearer TOKEN); /healthz and /readyz stay open for probes");
  cmd->add_flag("--insecure", flags.insecure,
                "Serve a non-loopback --status-addr without a token (behind a firewall or a "
                "network policy that decides who connects)");
}

}  // namespace lk::cmd
