// The event log: the one writer every component calls to record what
// happened. Rows are append-only (triggers reject UPDATE and DELETE). Event
// data never holds a secret's value; callers pass names only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "state/database.h"

namespace zwrm::state {

enum class EventSource { kHost, kGuest };

struct Event {
  std::string project;
  std::string run;
  EventSource source = EventSource::kHost;
  std::string type;       // dotted name: run.start, run.exec, run.exit, run.end, project.create
  nlohmann::json data = nlohmann::json::object();
  std::int64_t time_ms = 0;  // 0: now
  std::int64_t id = 0;       // set when read back
};

// Appends one event and returns its id.
Result<std::int64_t> append_event(Database& db, Event event);

// Returns events in id order, optionally only those of one run.
Result<std::vector<Event>> read_events(Database& db, const std::string& run = {});

}  // namespace zwrm::state
