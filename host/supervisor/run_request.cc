#include "host/supervisor/run_request.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

namespace zwrm::supervisor {

namespace {

using nlohmann::json;

json artifact_json(const Artifact& artifact) { return {{"path", artifact.path}, {"digest", artifact.digest}}; }

Artifact artifact_from(const json& value) {
  return Artifact{value.at("path").get<std::string>(), value.at("digest").get<std::string>()};
}

// A field whose value is outside the range its message allows.
class InvalidField : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// nlohmann's accessors throw on a missing key or a wrong type, and the
// readers below throw InvalidField. The client channel is trusted input,
// but a bad message still becomes an Error.
template <typename Parse>
auto parse_message(const char* what, Parse parse) -> Result<decltype(parse())> {
  try {
    return parse();
  } catch (const json::exception& error) {
    return fail(std::string("malformed ") + what + " message: " + error.what());
  } catch (const InvalidField& error) {
    return fail(std::string("malformed ") + what + " message: " + error.what());
  }
}

// Reads an integer field of type T. nlohmann's get<T>() also takes a float
// or a boolean and casts it, and casting a float outside T's range is
// undefined behaviour, so only an integer within T's range is accepted.
template <typename T>
T integer_field(const json& value, const char* name) {
  const json& field = value.at(name);
  if (field.is_number_unsigned()) {
    const auto number = field.get<std::uint64_t>();
    if (std::in_range<T>(number)) return static_cast<T>(number);
  } else if (field.is_number_integer()) {
    const auto number = field.get<std::int64_t>();
    if (std::in_range<T>(number)) return static_cast<T>(number);
  }
  throw InvalidField(std::string(name) + " must be an integer from " + std::to_string(std::numeric_limits<T>::min()) +
                     " to " + std::to_string(std::numeric_limits<T>::max()));
}

// Reads a duration in milliseconds from 1 to kMaxDurationMs, so that adding
// it to a clock reading cannot overflow.
std::int64_t duration_field(const json& value, const char* name) {
  const auto ms = integer_field<std::int64_t>(value, name);
  if (ms < 1 || ms > kMaxDurationMs) {
    throw InvalidField(std::string(name) + " must be from 1 to " + std::to_string(kMaxDurationMs) + " ms");
  }
  return ms;
}

// Reads a deadline: null for none, or a duration.
std::optional<std::int64_t> deadline_field(const json& value, const char* name) {
  if (value.at(name).is_null()) return std::nullopt;
  return duration_field(value, name);
}

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Appends entries to env, replacing an existing entry of the same name in
// place, so the result has each name once.
void merge_environment(std::vector<std::string>& env, const std::vector<std::string>& entries) {
  for (const std::string& entry : entries) {
    const std::string name = entry.substr(0, entry.find('='));
    auto existing = std::find_if(env.begin(), env.end(), [&](const std::string& current) {
      return current.compare(0, name.size(), name) == 0 && current.size() > name.size() && current[name.size()] == '=';
    });
    if (existing != env.end()) {
      *existing = entry;
    } else {
      env.push_back(entry);
    }
  }
}

}  // namespace

protocol::ExecRequest make_exec_request(const RunRequest& request) {
  protocol::ExecRequest exec;
  exec.argv = request.argv;
  const bool root = request.root;
  exec.env = {std::string("PATH=") + kDefaultPath, root ? "HOME=/root" : "HOME=/home/agent",
              root ? "USER=root" : "USER=agent", root ? "LOGNAME=root" : "LOGNAME=agent", "LANG=C.UTF-8"};
  merge_environment(exec.env, request.env);
  exec.cwd = "/workspace";
  exec.uid = root ? 0 : 1000;
  exec.gid = root ? 0 : 1000;
  exec.tty = request.tty;
  exec.rows = request.rows;
  exec.cols = request.cols;
  return exec;
}

Status check_request_size(const RunRequest& request) {
  const std::size_t exec_size = protocol::encode(make_exec_request(request)).size();
  const std::size_t request_size = json_payload(to_json(request)).size();
  const std::size_t size = std::max(exec_size, request_size);
  if (size > protocol::kMaxPayload) {
    return fail("the command and its environment take " + std::to_string(size) + " bytes, more than the " +
                std::to_string(protocol::kMaxPayload) + " bytes zwrm can pass to a guest command; shorten them");
  }
  return {};
}

json to_json(const RunRequest& request) {
  json value = {{"project", request.project},   {"template", request.template_name},
                {"argv", request.argv},         {"env", request.env},
                {"root", request.root},         {"tty", request.tty},
                {"allow_no_limits", request.allow_no_limits},
                {"jail", request.jail},
                {"detach", request.detach},
                {"rows", request.rows},         {"cols", request.cols},
                {"cpus", request.cpus},         {"memory_mib", request.memory_mib},
                {"accel", request.accel},       {"accel_reason", request.accel_reason},
                {"kernel", artifact_json(request.kernel)},
                {"initramfs", artifact_json(request.initramfs)},
                {"image", artifact_json(request.image)},
                {"volume", request.volume},
                {"egress_rate", request.egress_rate},
                {"ingress_rate", request.ingress_rate},
                {"egress_quota", request.egress_quota},
                {"max_connections", request.max_connections},
                {"publish", request.publish}};
  value["timeout_ms"] = request.timeout_ms ? json(*request.timeout_ms) : json(nullptr);
  value["idle_timeout_ms"] = request.idle_timeout_ms ? json(*request.idle_timeout_ms) : json(nullptr);
  return value;
}

Result<RunRequest> run_request_from_json(const json& value) {
  return parse_message("run request", [&] {
    RunRequest request;
    request.project = value.at("project").get<std::string>();
    request.template_name = value.at("template").get<std::string>();
    request.argv = value.at("argv").get<std::vector<std::string>>();
    request.env = value.at("env").get<std::vector<std::string>>();
    request.root = value.at("root").get<bool>();
    request.tty = value.at("tty").get<bool>();
    request.allow_no_limits = value.at("allow_no_limits").get<bool>();
    request.jail = value.at("jail").get<std::string>();
    request.detach = value.at("detach").get<bool>();
    request.rows = integer_field<std::uint16_t>(value, "rows");
    request.cols = integer_field<std::uint16_t>(value, "cols");
    request.cpus = integer_field<unsigned>(value, "cpus");
    request.memory_mib = integer_field<std::uint64_t>(value, "memory_mib");
    request.timeout_ms = deadline_field(value, "timeout_ms");
    request.idle_timeout_ms = deadline_field(value, "idle_timeout_ms");
    request.accel = value.at("accel").get<std::string>();
    request.accel_reason = value.at("accel_reason").get<std::string>();
    request.kernel = artifact_from(value.at("kernel"));
    request.initramfs = artifact_from(value.at("initramfs"));
    request.image = artifact_from(value.at("image"));
    request.volume = value.at("volume").get<std::string>();
    request.egress_rate = integer_field<std::uint64_t>(value, "egress_rate");
    request.ingress_rate = integer_field<std::uint64_t>(value, "ingress_rate");
    request.egress_quota = integer_field<std::uint64_t>(value, "egress_quota");
    request.max_connections = integer_field<unsigned>(value, "max_connections");
    request.publish = value.at("publish").get<std::vector<std::string>>();
    return request;
  });
}

json to_json(const RunStarted& started) { return {{"run", started.run_id}, {"warnings", started.warnings}}; }

Result<RunStarted> run_started_from_json(const json& value) {
  return parse_message("run started", [&] {
    return RunStarted{value.at("run").get<std::string>(), value.at("warnings").get<std::vector<std::string>>()};
  });
}

json to_json(const RunEnded& ended) {
  return {{"run", ended.run_id},
          {"exit_code", ended.exit_code},
          {"cause", ended.cause},
          {"detail", ended.detail},
          {"notes", ended.notes}};
}

Result<RunEnded> run_ended_from_json(const json& value) {
  return parse_message("run ended", [&] {
    return RunEnded{value.at("run").get<std::string>(), integer_field<int>(value, "exit_code"),
                    value.at("cause").get<std::string>(), value.at("detail").get<std::string>(),
                    value.value("notes", std::vector<std::string>())};
  });
}

json to_json(const ExtendRequest& extend) { return {{"by_ms", extend.by_ms}}; }

Result<ExtendRequest> extend_request_from_json(const json& value) {
  return parse_message("extend request", [&] { return ExtendRequest{duration_field(value, "by_ms")}; });
}

Result<std::chrono::milliseconds> extended_time_left(std::chrono::milliseconds time_left, const ExtendRequest& extend) {
  const std::chrono::milliseconds longest(kMaxDurationMs);
  const std::chrono::milliseconds by(extend.by_ms);
  if (by <= std::chrono::milliseconds::zero() || by > longest || time_left > longest - by) {
    return fail("the deadline cannot be extended to more than " + std::to_string(kMaxDurationMs / 86'400'000) +
                " days from now");
  }
  return time_left + by;
}

json to_json(const ControlReply& reply) {
  return {{"ok", reply.ok},
          {"message", reply.message},
          {"deadline_in_ms", reply.deadline_in_ms ? json(*reply.deadline_in_ms) : json(nullptr)}};
}

Result<ControlReply> control_reply_from_json(const json& value) {
  return parse_message("control reply", [&] {
    ControlReply reply{value.at("ok").get<bool>(), value.at("message").get<std::string>(), std::nullopt};
    if (!value.at("deadline_in_ms").is_null()) reply.deadline_in_ms = integer_field<std::int64_t>(value, "deadline_in_ms");
    return reply;
  });
}

json to_json(const StopRequest& stop) {
  return {{"reason", stop.reason}, {"detail", stop.detail}, {"signal", stop.signal}};
}

Result<StopRequest> stop_request_from_json(const json& value) {
  return parse_message("stop request", [&] {
    const int signal = value.contains("signal") ? integer_field<int>(value, "signal") : 0;
    return StopRequest{value.at("reason").get<std::string>(), value.at("detail").get<std::string>(), signal};
  });
}

Result<json> parse_json_payload(const std::vector<std::uint8_t>& payload) {
  json value = json::parse(payload.begin(), payload.end(), nullptr, false);
  if (value.is_discarded() || !value.is_object()) return fail("malformed message: the payload is not a JSON object");
  return value;
}

std::vector<std::uint8_t> json_payload(const json& value) {
  const std::string text = value.dump();
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

}  // namespace zwrm::supervisor
