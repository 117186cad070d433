#include "agent/cli.h"

int main(int argc, char** argv) { return latpred::agent::RunAgent(argc, argv); }
