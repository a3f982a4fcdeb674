// `zwrm policy`: an agent's egress rules and the dry run that explains a
// decision. No VM boots here.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/integration/harness.h"

namespace zwrm::integration {
namespace {

// A TestHome with an agent of the minimal template, which has no rules, and
// a hosts file for `policy test`.
class PolicyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string hosts = home_.scratch() + "/hosts";
    std::ofstream(hosts) << "10.9.9.9 api.test\n127.0.0.1 loop.test\n";
    home_.set_env("ZWRM_TEST_HOSTS", hosts);
    const Outcome created = home_.zwrm({"agent", "create", "a1", "--template", "minimal"});
    ASSERT_EQ(created.exit_code, 0) << created;
  }

  std::vector<std::string> rules(const std::string& agent) {
    const Outcome listed = home_.zwrm({"policy", "ls", agent});
    EXPECT_EQ(listed.exit_code, 0) << listed;
    return split_lines(listed.out);
  }

  TestHome home_;
};

TEST_F(PolicyCliTest, AllowListsCanonicalRules) {
  const Outcome allowed =
      home_.zwrm({"policy", "allow", "a1", "API.Example.com.", "*.example.org:8443,443", "10.0.0.1", "bücher.example"});
  ASSERT_EQ(allowed.exit_code, 0) << allowed;
  EXPECT_EQ(rules("a1"), (std::vector<std::string>{"*.example.org:443,8443", "10.0.0.1/32", "api.example.com",
                                                   "xn--bcher-kva.example"}));
  const auto events = home_.events("policy.allow");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["rules"].size(), 4u);
}

TEST_F(PolicyCliTest, AllowTwiceKeepsOneRule) {
  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "api.example.com"}).exit_code, 0);
  const Outcome again = home_.zwrm({"policy", "allow", "a1", "api.example.com:80,443"});
  EXPECT_EQ(again.exit_code, 0) << again;
  EXPECT_NE(again.out.find("already allows api.example.com"), std::string::npos) << again;
  EXPECT_EQ(rules("a1"), std::vector<std::string>{"api.example.com"});
  EXPECT_EQ(home_.events("policy.allow").size(), 1u);
}

TEST_F(PolicyCliTest, DenyRemovesAnySpelling) {
  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "api.example.com", "10.0.0.0/8"}).exit_code, 0);
  const Outcome denied = home_.zwrm({"policy", "deny", "a1", "API.EXAMPLE.COM"});
  EXPECT_EQ(denied.exit_code, 0) << denied;
  EXPECT_EQ(rules("a1"), std::vector<std::string>{"10.0.0.0/8"});
  const auto events = home_.events("policy.deny");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["rules"], nlohmann::json::array({"api.example.com"}));
}

TEST_F(PolicyCliTest, BroadRangeWarnsAboutHostAddresses) {
  const Outcome allowed = home_.zwrm({"policy", "allow", "a1", "0.0.0.0/0", "10.0.0.0/8"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed;
  EXPECT_NE(allowed.err.find("warning: 0.0.0.0/0 includes 127.0.0.1 (loopback)"), std::string::npos) << allowed;
  EXPECT_NE(allowed.err.find("warning: 0.0.0.0/0 includes 169.254.169.254 (metadata)"), std::string::npos) << allowed;
  EXPECT_EQ(allowed.err.find("10.0.0.0/8 includes"), std::string::npos) << allowed;
}

// Linux connects 0.0.0.0 and :: to the host itself, so the proxy never
// connects to them, even when a rule names them.
TEST_F(PolicyCliTest, UnspecifiedAddressStaysDenied) {
  const Outcome allowed = home_.zwrm({"policy", "allow", "a1", "0.0.0.0/32:8080", "[::/128]:8080"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed;
  for (const char* url : {"http://0.0.0.0:8080/", "http://[::]:8080/"}) {
    const Outcome tested = home_.zwrm({"policy", "test", "a1", url});
    EXPECT_EQ(tested.exit_code, 1) << tested;
    EXPECT_NE(tested.out.find("(unspecified)"), std::string::npos) << tested;
  }
}

TEST_F(PolicyCliTest, DenyOfMissingRuleFails) {
  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "api.example.com"}).exit_code, 0);
  const Outcome denied = home_.zwrm({"policy", "deny", "a1", "api.example.com", "other.example.com"});
  EXPECT_EQ(denied.exit_code, 125) << denied;
  EXPECT_EQ(denied.err, "zwrm: error: agent a1 has no rule other.example.com; `zwrm policy ls a1` lists its rules\n");
  // Nothing changed: the rule that did exist is still there.
  EXPECT_EQ(rules("a1"), std::vector<std::string>{"api.example.com"});
  EXPECT_TRUE(home_.events("policy.deny").empty());
}

TEST_F(PolicyCliTest, InvalidRulesRejected) {
  for (const char* rule : {"https://api.example.com", "*", "*.com", "a..b", "host:0", "10.0.0.1/8", "127.1"}) {
    const Outcome result = home_.zwrm({"policy", "allow", "a1", rule});
    EXPECT_EQ(result.exit_code, 125) << result;
    EXPECT_EQ(result.err.rfind("zwrm: error: invalid rule", 0), 0u) << result;
    EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result;
  }
  EXPECT_TRUE(rules("a1").empty());
}

TEST_F(PolicyCliTest, UnknownAgentRejected) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"policy", "allow", "nobody", "api.example.com"},
           {"policy", "ls", "nobody"},
           {"policy", "test", "nobody", "https://api.example.com/"}}) {
    const Outcome result = home_.zwrm(args);
    EXPECT_EQ(result.exit_code, 125) << result;
    EXPECT_EQ(result.err, "zwrm: error: no agent named nobody; `zwrm agent ls` lists agents\n") << result;
  }
}

TEST_F(PolicyCliTest, TemplateRulesSeededOnce) {
  ASSERT_EQ(home_.zwrm({"agent", "create", "c1", "--template", "claude"}).exit_code, 0);
  EXPECT_EQ(rules("c1"), (std::vector<std::string>{"api.anthropic.com:443", "platform.claude.com:443"}));
  ASSERT_EQ(home_.zwrm({"policy", "deny", "c1", "platform.claude.com:443"}).exit_code, 0);
  // A removed template rule stays removed.
  EXPECT_EQ(rules("c1"), std::vector<std::string>{"api.anthropic.com:443"});
  const Outcome shown = home_.zwrm({"agent", "show", "c1", "--json"});
  ASSERT_EQ(shown.exit_code, 0) << shown;
  EXPECT_EQ(nlohmann::json::parse(shown.out)["policy"], nlohmann::json::array({"api.anthropic.com:443"}));
}

TEST_F(PolicyCliTest, TestExplainsDecisions) {
  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "api.test", "loop.test:8080"}).exit_code, 0);

  const Outcome unlisted = home_.zwrm({"policy", "test", "a1", "https://other.test/x"});
  EXPECT_EQ(unlisted.exit_code, 1) << unlisted;
  EXPECT_NE(unlisted.out.find("deny other.test:443: no rule allows other.test:443"), std::string::npos) << unlisted;

  const Outcome private_address = home_.zwrm({"policy", "test", "a1", "https://api.test/v1"});
  EXPECT_EQ(private_address.exit_code, 1) << private_address;
  EXPECT_NE(private_address.out.find("10.9.9.9 (private)"), std::string::npos) << private_address;

  const Outcome loopback = home_.zwrm({"policy", "test", "a1", "http://loop.test:8080/"});
  EXPECT_EQ(loopback.exit_code, 1) << loopback;
  EXPECT_NE(loopback.out.find("loopback"), std::string::npos) << loopback;

  const Outcome literal = home_.zwrm({"policy", "test", "a1", "http://0x7f.1:8080/"});
  EXPECT_EQ(literal.exit_code, 1) << literal;
  EXPECT_NE(literal.out.find("deny 127.0.0.1:8080"), std::string::npos) << literal;

  ASSERT_EQ(home_.zwrm({"policy", "allow", "a1", "10.9.9.0/24:443"}).exit_code, 0);
  const Outcome allowed = home_.zwrm({"policy", "test", "a1", "https://API.test./v1"});
  EXPECT_EQ(allowed.exit_code, 0) << allowed;
  EXPECT_NE(allowed.out.find("allow api.test:443 by rule api.test"), std::string::npos) << allowed;
  EXPECT_NE(allowed.out.find("connects to 10.9.9.9"), std::string::npos) << allowed;
  EXPECT_NE(allowed.out.find("10.9.9.0/24:443"), std::string::npos) << allowed;

  const Outcome bad_url = home_.zwrm({"policy", "test", "a1", "ftp://api.test/"});
  EXPECT_EQ(bad_url.exit_code, 125) << bad_url;
  EXPECT_NE(bad_url.err.find("http:// and https:// only"), std::string::npos) << bad_url;
}

TEST_F(PolicyCliTest, EgressSettingsValidated) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--egress-rate", "0"}, {"--ingress-rate", "fast"}, {"--egress-quota", "1K"},
           {"--max-connections", "0"}, {"--max-connections", "100000"}}) {
    std::vector<std::string> command = {"agent", "set", "a1"};
    command.insert(command.end(), args.begin(), args.end());
    const Outcome result = home_.zwrm(command);
    EXPECT_EQ(result.exit_code, 125) << result;
    EXPECT_EQ(result.err.rfind("zwrm: error: invalid " + args[0], 0), 0u) << result;
  }
  const Outcome set = home_.zwrm({"agent", "set", "a1", "--egress-rate", "10MB/s", "--max-connections", "8"});
  ASSERT_EQ(set.exit_code, 0) << set;
  const Outcome shown = home_.zwrm({"agent", "show", "a1", "--json"});
  const nlohmann::json agent = nlohmann::json::parse(shown.out);
  EXPECT_EQ(agent["egress_rate"], 10 << 20);
  EXPECT_EQ(agent["max_connections"], 8);
}

}  // namespace
}  // namespace zwrm::integration
