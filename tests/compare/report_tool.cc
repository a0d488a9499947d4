// `shadowtap report` without the agent: lets the browser test run before (or
// without) the main binary. Same entry point as the agent's subcommand.
#include "compare/report.h"

int main(int argc, char** argv) { return shadowtap::compare::runReportCommand(argc, argv); }
