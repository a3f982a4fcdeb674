#include "host/supervisor/run_request.h"

#include <gtest/gtest.h>

#include <string>

namespace zwrm::supervisor {
namespace {

using nlohmann::json;

RunRequest sample_request() {
  RunRequest request;
  request.project = "demo";
  request.template_name = "minimal";
  request.argv = {"sh", "-c", "echo hi"};
  request.env = {"TERM=xterm"};
  request.tty = true;
  request.rows = 24;
  request.cols = 80;
  request.cpus = 2;
  request.memory_mib = 1024;
  request.timeout_ms = 600'000;
  request.accel = "tcg";
  request.kernel = {"/cache/bzImage", "aa"};
  request.initramfs = {"/cache/init.cpio", "bb"};
  request.image = {"/cache/minimal.img", "cc"};
  request.volume = "/volumes/demo.img";
  request.publish = {"127.0.0.1:8080:80"};
  return request;
}

// The sample request's JSON with one field replaced by the given JSON text.
json request_with(const std::string& key, const std::string& value) {
  json request = to_json(sample_request());
  request[key] = json::parse(value);
  return request;
}

TEST(RunRequest, RoundTrip) {
  auto parsed = run_request_from_json(to_json(sample_request()));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(to_json(*parsed), to_json(sample_request()));
}

TEST(RunRequest, RejectsNumbersOutOfRange) {
  // A float out of the field's range made nlohmann's cast undefined
  // behaviour; these came from the client_request fuzz target.
  for (const auto& [key, value] : {std::pair{"rows", "1e300"}, {"rows", "65536"}, {"cols", "-1"},
                                   {"cpus", "-1"}, {"cpus", "4294967296"}, {"memory_mib", "-5"},
                                   {"max_connections", "1e10"}, {"egress_rate", "-1"}}) {
    auto parsed = run_request_from_json(request_with(key, value));
    ASSERT_FALSE(parsed) << key << " = " << value;
    EXPECT_NE(parsed.error().message.find(key), std::string::npos) << parsed.error().message;
  }
}

TEST(RunRequest, RejectsNonIntegerNumbers) {
  for (const auto& [key, value] : {std::pair{"rows", "24.5"}, {"cpus", "true"}, {"memory_mib", "512.0"},
                                   {"egress_quota", "\"20G\""}}) {
    EXPECT_FALSE(run_request_from_json(request_with(key, value))) << key << " = " << value;
  }
}

TEST(RunRequest, AcceptsFieldLimits) {
  auto parsed = run_request_from_json(request_with("rows", "65535"));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->rows, 65535);
  parsed = run_request_from_json(request_with("egress_quota", "18446744073709551615"));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->egress_quota, UINT64_MAX);
}

TEST(RunRequest, DeadlineRange) {
  for (const char* key : {"timeout_ms", "idle_timeout_ms"}) {
    EXPECT_FALSE(run_request_from_json(request_with(key, "0"))) << key;
    EXPECT_FALSE(run_request_from_json(request_with(key, "-1000"))) << key;
    EXPECT_FALSE(run_request_from_json(request_with(key, std::to_string(kMaxDurationMs + 1)))) << key;
    EXPECT_FALSE(run_request_from_json(request_with(key, "9223372036854775807"))) << key;

    auto longest = run_request_from_json(request_with(key, std::to_string(kMaxDurationMs)));
    ASSERT_TRUE(longest) << longest.error().message;
    auto none = run_request_from_json(request_with(key, "null"));
    ASSERT_TRUE(none) << none.error().message;
  }
  auto parsed = run_request_from_json(request_with("idle_timeout_ms", "1"));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->idle_timeout_ms, 1);
}

TEST(ExtendRequest, DurationRange) {
  EXPECT_FALSE(extend_request_from_json(json{{"by_ms", 0}}));
  EXPECT_FALSE(extend_request_from_json(json{{"by_ms", -60'000}}));
  EXPECT_FALSE(extend_request_from_json(json{{"by_ms", INT64_MAX}}));
  EXPECT_FALSE(extend_request_from_json(json{{"by_ms", 1e300}}));
  EXPECT_FALSE(extend_request_from_json(json{{"by_ms", 3600.5}}));

  auto parsed = extend_request_from_json(json{{"by_ms", 3'600'000}});
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->by_ms, 3'600'000);
}

TEST(ExtendedTimeLeft, AddsExtension) {
  using std::chrono::milliseconds;
  auto left = extended_time_left(milliseconds(5'000), ExtendRequest{60'000});
  ASSERT_TRUE(left) << left.error().message;
  EXPECT_EQ(*left, milliseconds(65'000));

  auto late = extended_time_left(milliseconds(-20), ExtendRequest{1'000});
  ASSERT_TRUE(late) << late.error().message;
  EXPECT_EQ(*late, milliseconds(980)) << "a deadline just past is pushed from where it was";
}

TEST(ExtendedTimeLeft, CapsRepeatedExtensions) {
  using std::chrono::milliseconds;
  // Each request is within range, but together they would pass the
  // clock's range (about 292 years in nanoseconds) without the cap.
  milliseconds left(1'000);
  int accepted = 0;
  for (int i = 0; i < 40; ++i) {
    auto extended = extended_time_left(left, ExtendRequest{kMaxDurationMs / 4});
    if (!extended) break;
    left = *extended;
    ++accepted;
  }
  EXPECT_EQ(accepted, 3);
  EXPECT_LE(left, milliseconds(kMaxDurationMs));

  auto full = extended_time_left(milliseconds::zero(), ExtendRequest{kMaxDurationMs});
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(*full, milliseconds(kMaxDurationMs));
  EXPECT_FALSE(extended_time_left(milliseconds(1), ExtendRequest{kMaxDurationMs}));
  EXPECT_FALSE(extended_time_left(milliseconds(1'000), ExtendRequest{0}));
  EXPECT_FALSE(extended_time_left(milliseconds(1'000), ExtendRequest{INT64_MAX}));
}

TEST(StopRequest, Signal) {
  auto plain = stop_request_from_json(json{{"reason", "stopped"}, {"detail", ""}});
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(plain->signal, 0);

  auto interrupted = stop_request_from_json(json{{"reason", "interrupted"}, {"detail", ""}, {"signal", 2}});
  ASSERT_TRUE(interrupted) << interrupted.error().message;
  EXPECT_EQ(interrupted->signal, 2);

  EXPECT_FALSE(stop_request_from_json(json{{"reason", "stopped"}, {"detail", ""}, {"signal", 1e300}}));
  EXPECT_FALSE(stop_request_from_json(json{{"reason", "stopped"}, {"detail", ""}, {"signal", 4294967298}}));
}

TEST(RunEnded, ExitCodeMustBeAnInt) {
  const json ended = {{"run", "abc"}, {"exit_code", 1e300}, {"cause", "exit"}, {"detail", ""}};
  EXPECT_FALSE(run_ended_from_json(ended));
}

TEST(ControlReply, DeadlineMustBeAnInteger) {
  EXPECT_FALSE(control_reply_from_json(json{{"ok", true}, {"message", ""}, {"deadline_in_ms", 1e300}}));
  auto reply = control_reply_from_json(json{{"ok", true}, {"message", ""}, {"deadline_in_ms", -5}});
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->deadline_in_ms, -5);
}

}  // namespace
}  // namespace zwrm::supervisor
