// shadowtap: parse flags, build the pipeline, run it, exit cleanly.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <string_view>

#include "capture/libbpf_log.h"
#include "capture/privileges.h"
#include "compare/report.h"
#include "config.h"
#include "offline/replay_command.h"
#include "logging.h"
#include "base/memory_tuning.h"
#include "pipeline.h"
#include "replay/open_files_limit.h"

int main(int argc, char** argv) {
  shadowtap::tuneAllocatorForRequests();
  // Subcommands that work on files, without capturing anything.
  if (argc > 1 && std::string_view(argv[1]) == "report") {
    return shadowtap::compare::runReportCommand(argc - 1, argv + 1);
  }
  if (argc > 1 && std::string_view(argv[1]) == "replay") {
    return shadowtap::offline::runReplayCommand(argc - 1, argv + 1);
  }
  shadowtap::Config config;
  int code = shadowtap::parseConfig(argc, argv, config);
  if (code >= 0) {
    return code;
  }
  // With --dry-run stdout carries the JSON lines; the log must not mix into them.
  shadowtap::setupLogging(config.logLevel, config.logFormat, config.dryRun);
  shadowtap::capture::routeLibbpfLogsToSpdlog();

  // Say what is missing up front instead of failing deep inside libbpf.
  if (std::string missing = shadowtap::capture::missingPrivileges(); !missing.empty()) {
    std::cerr << "shadowtap: " << missing << std::endl;
    return 1;
  }

  // Signals are taken by the capture loop through a signalfd; block them in
  // every thread, including the replay thread started below.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);

  shadowtap::replay::raiseOpenFilesLimit();  // mirror pools grow to --mirror-max-connections sockets
  std::string error;
  auto pipeline = shadowtap::Pipeline::create(config, &error);
  if (!pipeline) {
    std::cerr << "shadowtap: " << error << std::endl;
    return 1;
  }
  // SIGHUP re-reads the same flags and the --config file.
  pipeline->setReloadSource([argc, argv](std::string* error) -> std::optional<shadowtap::Config> {
    shadowtap::Config next;
    if (!shadowtap::reparseConfig(argc, argv, next, error)) {
      return std::nullopt;
    }
    return next;
  });
  return pipeline->run();
}
