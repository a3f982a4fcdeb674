// libFuzzer target for the JSON payloads a client sends a supervisor: the
// run request on the client channel, and stop and extend requests on the
// run's control socket, which any process of the same user can connect to.
// The CLI's readers of the supervisor's replies (run started, run ended,
// control reply) get the same input. Every message that parses must survive
// a round trip through its JSON encoding unchanged. A run request must also
// give publish entries that survive format_port_mapping, and an exec request
// that decodes back to itself when it fits in a frame. A failed check
// aborts, which fails the fuzz run like a crash.
#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "host/supervisor/port_mapping.h"
#include "host/supervisor/run_request.h"
#include "protocol/message.h"

namespace {

using namespace zwrm::supervisor;
using nlohmann::json;

template <typename Message>
void check_round_trip(zwrm::Result<Message> (*parse)(const json&), const json& value) {
  auto message = parse(value);
  if (!message) return;
  const json encoded = to_json(*message);
  auto reparsed = parse_json_payload(json_payload(encoded));
  ZWRM_CHECK(reparsed.has_value());
  auto again = parse(*reparsed);
  ZWRM_CHECK(again.has_value());
  ZWRM_CHECK(to_json(*again) == encoded);
}

void check_publish(const std::string& text) {
  auto mapping = parse_port_mapping(text);
  if (!mapping) return;
  ZWRM_CHECK(mapping->host_port != 0 && mapping->guest_port != 0);
  auto again = parse_port_mapping(format_port_mapping(*mapping));
  ZWRM_CHECK(again.has_value());
  ZWRM_CHECK(again->host_address == mapping->host_address);
  ZWRM_CHECK(again->host_port == mapping->host_port);
  ZWRM_CHECK(again->guest_port == mapping->guest_port);
}

void check_exec_request(const RunRequest& request) {
  const zwrm::protocol::ExecRequest exec = make_exec_request(request);
  const auto payload = zwrm::protocol::encode(exec);
  const bool fits = payload.size() <= zwrm::protocol::kMaxPayload;
  if (check_request_size(request)) ZWRM_CHECK(fits);
  if (!fits) return;
  auto decoded = zwrm::protocol::decode_exec(payload);
  ZWRM_CHECK(decoded.has_value());
  ZWRM_CHECK(decoded->argv == exec.argv);
  ZWRM_CHECK(decoded->env == exec.env);
  ZWRM_CHECK(decoded->rows == request.rows && decoded->cols == request.cols);
}

void check_run_request(const json& value) {
  check_round_trip(run_request_from_json, value);
  auto request = run_request_from_json(value);
  if (!request) return;
  for (const std::string& entry : request->publish) check_publish(entry);
  check_exec_request(*request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::uint8_t> payload(data, data + size);
  auto value = parse_json_payload(payload);
  if (!value) return 0;
  check_run_request(*value);
  check_round_trip(stop_request_from_json, *value);
  check_round_trip(extend_request_from_json, *value);
  check_round_trip(run_started_from_json, *value);
  check_round_trip(run_ended_from_json, *value);
  check_round_trip(control_reply_from_json, *value);
  return 0;
}
