// test_postgres start|stop DIR: the ctest fixture that gives integration and store
// tests one PostgreSQL server (tests find it through LATPRED_TEST_POSTGRES_DIR).
#include <cstring>
#include <iostream>

#include "test_postgres.h"

int main(int argc, char** argv) {
  if (argc != 3 || (std::strcmp(argv[1], "start") != 0 && std::strcmp(argv[1], "stop") != 0)) {
    std::cerr << "usage: test_postgres start|stop DIR\n";
    return 2;
  }
  if (std::strcmp(argv[1], "stop") == 0) {
    (void)latpred::testing::TestPostgres::Stop(argv[2]);
    return 0;
  }
  auto server = latpred::testing::TestPostgres::Start(argv[2]);
  if (!server.ok()) {
    std::cerr << server.status() << "\n";
    return 1;
  }
  std::cout << "PostgreSQL serving on " << (*server)->Uri("postgres") << "\n";
  return 0;
}
