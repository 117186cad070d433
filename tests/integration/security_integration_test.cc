// Transport security end to end: the real server with TLS (a certificate this test makes
// with openssl) and a bearer token for writes, read from a file, never from argv.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "latpred/client/client.h"
#include "read_file.h"

namespace latpred {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kToken[] = "s3cret-token-for-tests";

using ::latpred::testing::ReadFile;

TEST(SecurityIntegrationTest, TlsAndTokensGuardWritesAndChangeNothingWhenWrong) {
  char tmpl[] = "/tmp/latpred-tls-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string openssl =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout '" + dir + "/key.pem' -out '" +
      dir + "/cert.pem' > '" + dir + "/openssl.log' 2>&1";
  ASSERT_EQ(std::system(openssl.c_str()), 0) << ReadFile(dir + "/openssl.log");
  std::ofstream(dir + "/token") << kToken << "\n";

  const std::string log = dir + "/server.log";
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    unsetenv("LATPRED_TOKEN");
    execl(LATPRED_SERVER_BIN, LATPRED_SERVER_BIN, "--listen", "127.0.0.1:0", "--data-dir",
          (dir + "/data").c_str(), "--epochs", "3", "--threads", "2", "--tls-cert",
          (dir + "/cert.pem").c_str(), "--tls-key", (dir + "/key.pem").c_str(), "--token-file",
          (dir + "/token").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Stops the server and removes the directory however the test ends.
  struct Cleanup {
    pid_t pid;
    std::string dir;
    ~Cleanup() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
      (void)std::system(("rm -rf '" + dir + "'").c_str());
    }
  } cleanup{pid, dir};
  int port = 0;
  auto deadline = Clock::now() + std::chrono::minutes(10);
  while (port == 0) {
    ASSERT_LT(Clock::now(), deadline) << ReadFile(log);
    ASSERT_EQ(waitpid(pid, nullptr, WNOHANG), 0) << ReadFile(log);
    std::string text = ReadFile(log);
    if (size_t at = text.find("listening on port "); at != std::string::npos) port = std::atoi(text.c_str() + at + 18);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // The token is nowhere on the server's command line.
  EXPECT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/cmdline").find(kToken), std::string::npos);

  auto connect = [&](const std::string& token, const std::string& ca) {
    client::ClientOptions options;
    options.target = "localhost:" + std::to_string(port);
    options.token = token;
    options.ca_file = ca;
    options.timeout = absl::Seconds(20);
    return std::move(*client::Client::Connect(options));
  };
  auto good = connect(kToken, dir + "/cert.pem");
  auto wrong = connect("not-the-token", dir + "/cert.pem");
  auto anonymous = connect("", dir + "/cert.pem");
  auto plaintext = connect(kToken, "");
  ASSERT_TRUE(good->WaitUntilServing(absl::Minutes(10)).ok()) << ReadFile(log);

  v1::RegisterDeviceRequest reg;
  reg.set_name("tls-device");
  EXPECT_EQ(wrong->RegisterDevice(reg).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(anonymous->RegisterDevice(reg).status().code(), absl::StatusCode::kUnauthenticated);
  v1::GetDeviceRequest get;
  get.set_name("tls-device");
  EXPECT_EQ(good->GetDevice(get).status().code(), absl::StatusCode::kNotFound)
      << "a rejected write must change nothing";
  ASSERT_TRUE(good->RegisterDevice(reg).ok());

  v1::SubmitSamplesRequest sub;
  sub.set_device("tls-device");
  sub.set_space("nb201");
  auto* s = sub.add_samples();
  s->set_arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|");
  s->set_latency_ms(4.2);
  EXPECT_EQ(wrong->SubmitSamples(sub).status().code(), absl::StatusCode::kUnauthenticated);
  v1::AdaptDeviceRequest adapt;
  adapt.set_device("tls-device");
  adapt.set_space("nb201");
  EXPECT_EQ(anonymous->AdaptDevice(adapt).status().code(), absl::StatusCode::kUnauthenticated);
  auto device = anonymous->GetDevice(get);  // reads need no token
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_EQ(device->spaces_size(), 0) << "rejected samples must not be stored";
  ASSERT_TRUE(good->SubmitSamples(sub).ok());
  ASSERT_TRUE(good->AdaptDevice(adapt).ok());

  v1::PredictLatencyRequest pred;
  pred.set_device("tls-device");
  pred.set_space("nb201");
  pred.add_archs(s->arch());
  EXPECT_TRUE(anonymous->PredictLatency(pred).ok());
  EXPECT_EQ(wrong->PredictLatency(pred).status().code(), absl::StatusCode::kUnauthenticated);
  // A client without TLS cannot talk to the TLS port.
  EXPECT_FALSE(plaintext->GetServerInfo().ok());

  // The agent onboards through TLS with the token from $LATPRED_TOKEN_FILE, and is
  // refused without it.
  const std::string agent = std::string("'") + LATPRED_AGENT_BIN +
                            "' onboard --server localhost:" + std::to_string(port) + " --ca '" +
                            dir + "/cert.pem' --name tls-agent --samples 3 --check 2 --quick "
                            "--max-attempts 2 --spool '" + dir + "/spool.csv'";
  const std::string refused = "env -u LATPRED_TOKEN -u LATPRED_TOKEN_FILE " + agent + " > '" +
                              dir + "/agent-refused.log' 2>&1";
  EXPECT_NE(std::system(refused.c_str()), 0) << ReadFile(dir + "/agent-refused.log");
  EXPECT_NE(ReadFile(dir + "/agent-refused.log").find("UNAUTHENTICATED"), std::string::npos)
      << ReadFile(dir + "/agent-refused.log");
  const std::string onboard = "env -u LATPRED_TOKEN LATPRED_TOKEN_FILE='" + dir + "/token' " +
                              agent + " > '" + dir + "/agent.log' 2>&1";
  EXPECT_EQ(std::system(onboard.c_str()), 0) << ReadFile(dir + "/agent.log");
  get.set_name("tls-agent");
  auto onboarded = good->GetDevice(get);
  ASSERT_TRUE(onboarded.ok()) << onboarded.status() << ReadFile(dir + "/agent.log");
  bool found = false;
  for (const v1::SpaceState& space : onboarded->spaces()) {
    if (space.space() != "nb201") continue;
    found = true;
    EXPECT_EQ(space.sample_count(), 3);
    EXPECT_EQ(space.state(), v1::MODEL_STATE_ADAPTED);
  }
  EXPECT_TRUE(found) << onboarded->DebugString();

}

}  // namespace
}  // namespace latpred
