// `zwrm policy`: an agent's egress rules (allow, deny, ls) and a dry run
// that explains what the proxy would decide for a URL (test).
#include <poll.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/prepare.h"
#include "common/printable.h"
#include "host/proxy/policy.h"
#include "host/supervisor/resolver.h"
#include "state/agents.h"
#include "state/audit.h"
#include "state/names.h"
#include "state/policy.h"

namespace zwrm::cli {

namespace {

using nlohmann::json;

// The exit status of `zwrm policy test` when the policy denies the URL.
constexpr int kExitDenied = 1;

Result<state::Agent> load_agent(const Session& session, const std::string& name) {
  if (auto valid = state::validate_project_name(name); !valid) return tl::unexpected(valid.error());
  auto agent = state::find_agent(*session.db, name);
  if (!agent) return tl::unexpected(agent.error());
  if (!*agent) return fail("no agent named " + name + "; `zwrm agent ls` lists agents");
  if (auto seeded = seed_agent_policy(session.paths, *session.db, **agent); !seeded) return tl::unexpected(seeded.error());
  return std::move(**agent);
}

Result<std::vector<std::string>> canonical_rules(const std::vector<std::string>& texts) {
  std::vector<std::string> rules;
  for (const std::string& text : texts) {
    auto rule = proxy::parse_rule(text);
    if (!rule) return tl::unexpected(rule.error());
    rules.push_back(rule->text());
  }
  return rules;
}

// Warns when a new address range rule also opens loopback or a cloud
// metadata address, which a range such as 0.0.0.0/0 does silently. The
// unspecified addresses (0.0.0.0, ::) are left out: the proxy never connects
// to them, whatever the rules contain.
void warn_about_host_addresses(const std::vector<std::string>& rules) {
  for (const std::string& text : rules) {
    auto rule = proxy::parse_rule(text);
    if (!rule || rule->kind != proxy::Rule::Kind::kAddressRange) continue;
    for (const char* sensitive : {"127.0.0.1", "::1", "169.254.169.254", "fd00:ec2::254"}) {
      const auto address = proxy::parse_ip_literal(sensitive);
      if (address && rule->range.contains(*address)) {
        std::fprintf(stderr,
                     "zwrm: warning: %s includes %s (%s), so this agent's runs can reach that address as seen from "
                     "this host, where the proxy runs\n",
                     text.c_str(), sensitive, std::string(proxy::special_range(*address).value_or("special")).c_str());
      }
    }
  }
}

int change_rules(const std::string& name, const std::vector<std::string>& texts, bool allow) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agent = load_agent(*session, name);
  if (!agent) return report_error(agent.error());
  auto rules = canonical_rules(texts);
  if (!rules) return report_error(rules.error());

  std::vector<std::string> changed;
  std::vector<std::string> unchanged;
  auto stored = state::transaction(*session->db, [&]() -> Status {
    for (const std::string& rule : *rules) {
      auto done = allow ? state::add_policy_rule(*session->db, name, rule)
                        : state::remove_policy_rule(*session->db, name, rule);
      if (!done) return tl::unexpected(done.error());
      (*done ? changed : unchanged).push_back(rule);
    }
    if (!allow && !unchanged.empty()) {
      return fail("agent " + name + " has no rule " + printable(unchanged.front()) +
                  "; `zwrm policy ls " + name + "` lists its rules");
    }
    if (changed.empty()) return {};
    auto appended = state::append_event(*session->db, {name, "", state::EventSource::kHost,
                                                       allow ? "policy.allow" : "policy.deny", {{"rules", changed}}});
    if (!appended) return tl::unexpected(appended.error());
    return {};
  });
  if (!stored) return report_error(stored.error());
  for (const std::string& rule : changed) std::printf("%s %s for agent %s\n", allow ? "allowed" : "removed", rule.c_str(), name.c_str());
  if (allow) warn_about_host_addresses(changed);
  for (const std::string& rule : unchanged) std::printf("agent %s already allows %s\n", name.c_str(), rule.c_str());
  return 0;
}

int list_rules(const std::string& name, bool as_json) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agent = load_agent(*session, name);
  if (!agent) return report_error(agent.error());
  auto rules = state::list_policy_rules(*session->db, name);
  if (!rules) return report_error(rules.error());
  for (const state::PolicyRule& rule : *rules) {
    if (as_json) {
      std::printf("%s\n", json({{"rule", rule.rule}, {"added_at_ms", rule.added_at_ms}}).dump().c_str());
    } else {
      std::printf("%s\n", rule.rule.c_str());
    }
  }
  if (rules->empty() && !as_json) {
    std::fprintf(stderr, "zwrm: agent %s allows no egress; add a rule with `zwrm policy allow %s HOST`\n", name.c_str(),
                 name.c_str());
  }
  return 0;
}

// Splits a URL ("https://host:port/path"), or a bare "host[:port]", into
// the request the proxy would see.
Result<proxy::Target> parse_test_url(const std::string& url) {
  std::string rest = url;
  std::uint16_t default_port = 443;
  const std::size_t scheme_end = rest.find("://");
  if (scheme_end != std::string::npos) {
    std::string scheme = rest.substr(0, scheme_end);
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "http") {
      default_port = 80;
    } else if (scheme != "https") {
      return fail("invalid URL " + printable(url) + ": the proxy relays http:// and https:// only");
    }
    rest = rest.substr(scheme_end + 3);
  }
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (rest.find('@') != std::string::npos) {
    return fail("invalid URL " + printable(url) + ": the proxy rejects a host with userinfo (user@host); leave it out");
  }
  auto target = proxy::parse_authority(rest, default_port);
  if (!target) return fail("invalid URL " + printable(url) + ": " + target.error().message);
  return target;
}

// Resolves host as a run's proxy would, waiting at most 10 s.
Result<std::vector<proxy::IpAddress>> resolve_now(const std::string& host) {
  auto resolver = supervisor::Resolver::create();
  if (!resolver) return tl::unexpected(resolver.error());
  (*resolver)->start(1, host);
  pollfd fd{(*resolver)->fd(), POLLIN, 0};
  if (::poll(&fd, 1, 10'000) <= 0) return fail("resolving " + host + " timed out");
  auto results = (*resolver)->take_results();
  if (results.empty() || results.front().addresses.empty()) {
    return fail("cannot resolve " + host + ": " + (results.empty() ? std::string("no answer") : results.front().error));
  }
  return results.front().addresses;
}

int test_url(const std::string& name, const std::string& url) {
  auto session = open_session();
  if (!session) return report_error(session.error());
  auto agent = load_agent(*session, name);
  if (!agent) return report_error(agent.error());
  auto target = parse_test_url(url);
  if (!target) return report_error(target.error());
  auto stored = state::list_policy_rules(*session->db, name);
  if (!stored) return report_error(stored.error());
  std::vector<proxy::Rule> rules;
  for (const state::PolicyRule& entry : *stored) {
    if (auto rule = proxy::parse_rule(entry.rule)) rules.push_back(std::move(*rule));
  }

  const std::string where = proxy::format_target(*target);
  const proxy::NameDecision decision = proxy::check_target(rules, *target);
  if (!decision.allowed) {
    std::printf("deny %s: %s\n", where.c_str(), decision.reason.c_str());
    std::string rule = where;
    if (target->ip) {
      const bool v4 = target->ip->family == proxy::IpAddress::Family::kV4;
      const std::string range = target->host + (v4 ? "/32" : "/128");
      rule = (v4 ? range : "[" + range + "]") + ":" + std::to_string(target->port);
    }
    std::printf("  to allow it: zwrm policy allow %s %s\n", name.c_str(), rule.c_str());
    return kExitDenied;
  }
  std::vector<proxy::IpAddress> addresses;
  if (target->ip) {
    addresses.push_back(*target->ip);
  } else {
    auto resolved = resolve_now(target->host);
    if (!resolved) {
      std::printf("allow %s by rule %s\n", where.c_str(), decision.rule.c_str());
      std::printf("  but a connection would fail now: %s\n", resolved.error().message.c_str());
      return 0;
    }
    addresses = std::move(*resolved);
  }
  const proxy::AddressDecision address = proxy::choose_address(rules, *target, addresses);
  if (!address.allowed) {
    std::printf("deny %s: %s\n", where.c_str(), address.reason.c_str());
    return kExitDenied;
  }
  std::printf("allow %s by rule %s\n", where.c_str(), decision.rule.c_str());
  std::printf("  connects to %s%s\n", proxy::format_ip(address.address).c_str(),
              address.rule.empty() ? "" : (" (a special address, allowed by rule " + address.rule + ")").c_str());
  if (!target->ip) std::printf("  (resolved now; a run resolves the name again for each connection)\n");
  return 0;
}

}  // namespace

void add_policy_commands(CLI::App& app, Context& context) {
  CLI::App* policy = app.add_subcommand("policy", "Manage an agent's egress policy: where its runs may connect");
  policy->require_subcommand(1);

  auto allow_name = std::make_shared<std::string>();
  auto allow_rules = std::make_shared<std::vector<std::string>>();
  CLI::App* allow = policy->add_subcommand(
      "allow", "Allow connections to a host (api.example.com), its subdomains (*.example.com) or an address range "
               "(10.0.0.0/8), each optionally with :PORT[,PORT...] (default 443,80)");
  allow->add_option("name", *allow_name, "Agent name")->required();
  allow->add_option("rules", *allow_rules, "Rules to add")->required();
  allow->callback([=, &context] { context.exit_code = change_rules(*allow_name, *allow_rules, true); });

  auto deny_name = std::make_shared<std::string>();
  auto deny_rules = std::make_shared<std::vector<std::string>>();
  CLI::App* deny = policy->add_subcommand("deny", "Remove rules, so what they allowed is denied again");
  deny->add_option("name", *deny_name, "Agent name")->required();
  deny->add_option("rules", *deny_rules, "Rules to remove, as `zwrm policy ls` prints them")->required();
  deny->callback([=, &context] { context.exit_code = change_rules(*deny_name, *deny_rules, false); });

  auto ls_name = std::make_shared<std::string>();
  auto ls_json = std::make_shared<bool>(false);
  CLI::App* ls = policy->add_subcommand("ls", "List an agent's egress rules");
  ls->add_option("name", *ls_name, "Agent name")->required();
  ls->add_flag("--json", *ls_json, "Print one JSON object per rule");
  ls->callback([=, &context] { context.exit_code = list_rules(*ls_name, *ls_json); });

  auto test_name = std::make_shared<std::string>();
  auto test_target = std::make_shared<std::string>();
  CLI::App* test = policy->add_subcommand(
      "test", "Explain what the proxy would decide for a URL, without connecting; exits 1 when it would deny");
  test->add_option("name", *test_name, "Agent name")->required();
  test->add_option("url", *test_target, "https://host[:port]/..., http://..., or host[:port]")->required();
  test->callback([=, &context] { context.exit_code = test_url(*test_name, *test_target); });
}

}  // namespace zwrm::cli
