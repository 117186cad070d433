// latpred-agent command line: measure, describe, onboard.
#ifndef LATPRED_AGENT_CLI_H_
#define LATPRED_AGENT_CLI_H_

namespace latpred::agent {

// Runs `latpred-agent argv...`; returns the process exit status.
int RunAgent(int argc, char** argv);

}  // namespace latpred::agent

#endif  // LATPRED_AGENT_CLI_H_
