#include "guest/init/proc_events.h"

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include <gtest/gtest.h>

#include "protocol/message.h"

namespace zwrm::guest {
namespace {

constexpr const char* kStatus =
    "Name:\tpython3\n"
    "Umask:\t0022\n"
    "State:\tR (running)\n"
    "Tgid:\t4242\n"
    "Ngid:\t0\n"
    "Pid:\t4242\n"
    "PPid:\t17\n"
    "TracerPid:\t0\n"
    "Uid:\t1000\t0\t1000\t1000\n"
    "Gid:\t1000\t1000\t1000\t1000\n";

TEST(ProcStatus, ParsesNamePidsAndRealUid) {
  auto status = parse_proc_status(kStatus);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->name, "python3");
  EXPECT_EQ(status->tgid, 4242);
  EXPECT_EQ(status->ppid, 17);
  EXPECT_EQ(status->uid, 1000u) << "the real uid, not the effective one";
}

TEST(ProcStatus, MissingLineIsRejected) {
  for (const char* line : {"Name:", "Tgid:", "PPid:", "Uid:"}) {
    std::string text = kStatus;
    const std::size_t start = text.find(line);
    text.erase(start, text.find('\n', start) + 1 - start);
    EXPECT_FALSE(parse_proc_status(text).has_value()) << "without " << line;
  }
}

TEST(ProcStatus, InvalidNumberIsRejected) {
  std::string text = kStatus;
  text.replace(text.find("PPid:\t17"), 8, "PPid:\tx7");
  EXPECT_FALSE(parse_proc_status(text).has_value());
}

TEST(ProcStatus, NameEscapesAreUndoneAndLengthCapped) {
  auto escaped = parse_proc_status("Name:\ta\\nb\\\\c\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\n");
  ASSERT_TRUE(escaped.has_value());
  EXPECT_EQ(escaped->name, "a\nb\\c");
  auto long_name = parse_proc_status("Name:\t0123456789abcdefghij\nTgid:\t1\nPPid:\t0\nUid:\t0\t0\t0\t0\n");
  ASSERT_TRUE(long_name.has_value());
  EXPECT_EQ(long_name->name.size(), protocol::kMaxEventCommBytes);
}

TEST(Cmdline, SplitsArguments) {
  const Argv argv = split_cmdline(std::string_view("python3\0-c\0pass\0", 15), true);
  EXPECT_EQ(argv.args, (std::vector<std::string>{"python3", "-c", "pass"}));
  EXPECT_FALSE(argv.truncated);
}

TEST(Cmdline, KeepsEmptyArguments) {
  const Argv argv = split_cmdline(std::string_view("sh\0\0x\0", 6), true);
  EXPECT_EQ(argv.args, (std::vector<std::string>{"sh", "", "x"}));
}

TEST(Cmdline, CutsLongArgument) {
  std::string content = "python3";
  content.push_back('\0');
  content += std::string(protocol::kMaxEventArgBytes + 10, 's');
  content.push_back('\0');
  content += "last";
  content.push_back('\0');
  const Argv argv = split_cmdline(content, true);
  ASSERT_EQ(argv.args.size(), 3u);
  EXPECT_EQ(argv.args[1].size(), protocol::kMaxEventArgBytes);
  EXPECT_EQ(argv.args[2], "last");
  EXPECT_TRUE(argv.truncated);
}

TEST(Cmdline, CutsArgumentCount) {
  std::string content;
  for (std::size_t i = 0; i < protocol::kMaxEventArgs + 5; ++i) {
    content += "a";
    content.push_back('\0');
  }
  const Argv argv = split_cmdline(content, true);
  EXPECT_EQ(argv.args.size(), protocol::kMaxEventArgs);
  EXPECT_TRUE(argv.truncated);
}

TEST(Cmdline, CutsTotalSize) {
  std::string content;
  for (int i = 0; i < 10; ++i) {
    content += std::string(protocol::kMaxEventArgBytes, 'a');
    content.push_back('\0');
  }
  const Argv argv = split_cmdline(content, true);
  std::size_t total = 0;
  for (const std::string& arg : argv.args) total += arg.size();
  EXPECT_EQ(total, protocol::kMaxEventArgvBytes);
  EXPECT_EQ(argv.args.size(), protocol::kMaxEventArgvBytes / protocol::kMaxEventArgBytes);
  EXPECT_TRUE(argv.truncated);
}

TEST(Cmdline, IncompleteReadIsTruncated) {
  const Argv argv = split_cmdline(std::string_view("cat\0fi", 6), false);
  EXPECT_EQ(argv.args, (std::vector<std::string>{"cat", "fi"}));
  EXPECT_TRUE(argv.truncated);
}

// Builds one netlink message of the process events connector.
std::vector<std::uint8_t> connector_message(const proc_event& event, std::uint32_t idx = CN_IDX_PROC) {
  std::vector<std::uint8_t> bytes(NLMSG_SPACE(sizeof(cn_msg) + sizeof(proc_event)));
  nlmsghdr header{};
  header.nlmsg_len = NLMSG_LENGTH(sizeof(cn_msg) + sizeof(proc_event));
  header.nlmsg_type = NLMSG_DONE;
  cn_msg message{};
  message.id.idx = idx;
  message.id.val = CN_VAL_PROC;
  message.len = sizeof(proc_event);
  std::memcpy(bytes.data(), &header, sizeof header);
  std::memcpy(bytes.data() + NLMSG_HDRLEN, &message, sizeof message);
  std::memcpy(bytes.data() + NLMSG_HDRLEN + sizeof message, &event, sizeof event);
  return bytes;
}

TEST(ProcDatagram, ParsesForkExecAndExit) {
  proc_event fork{};
  fork.what = proc_event::PROC_EVENT_FORK;
  fork.event_data.fork.parent_tgid = 10;
  fork.event_data.fork.child_pid = 11;
  fork.event_data.fork.child_tgid = 11;
  proc_event exec{};
  exec.what = proc_event::PROC_EVENT_EXEC;
  exec.event_data.exec.process_pid = 11;
  exec.event_data.exec.process_tgid = 11;
  proc_event exit{};
  exit.what = proc_event::PROC_EVENT_EXIT;
  exit.event_data.exit.process_pid = 11;
  exit.event_data.exit.process_tgid = 11;
  exit.event_data.exit.parent_tgid = 10;
  exit.event_data.exit.exit_code = 3 << 8;

  std::vector<std::uint8_t> datagram;
  for (const proc_event& event : {fork, exec, exit}) {
    const auto message = connector_message(event);
    datagram.insert(datagram.end(), message.begin(), message.end());
  }
  const std::vector<ProcEvent> events = parse_proc_datagram(datagram);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].what, ProcEvent::What::kFork);
  EXPECT_EQ(events[0].tgid, 11);
  EXPECT_EQ(events[0].parent_tgid, 10);
  EXPECT_EQ(events[1].what, ProcEvent::What::kExec);
  EXPECT_EQ(events[1].tgid, 11);
  EXPECT_EQ(events[2].what, ProcEvent::What::kExit);
  EXPECT_EQ(events[2].parent_tgid, 10);
  EXPECT_EQ(events[2].exit_code, 3u << 8);
}

TEST(ProcDatagram, SkipsOtherConnectorsAndShortMessages) {
  proc_event exec{};
  exec.what = proc_event::PROC_EVENT_EXEC;
  EXPECT_TRUE(parse_proc_datagram(connector_message(exec, CN_IDX_PROC + 1)).empty());

  std::vector<std::uint8_t> message = connector_message(exec);
  for (std::size_t size = 0; size < message.size(); ++size) {
    EXPECT_TRUE(parse_proc_datagram({message.data(), size}).empty()) << "prefix of " << size << " bytes";
  }
}

TEST(ProcDatagram, LengthBeyondDatagramStops) {
  proc_event exec{};
  exec.what = proc_event::PROC_EVENT_EXEC;
  std::vector<std::uint8_t> message = connector_message(exec);
  nlmsghdr header;
  std::memcpy(&header, message.data(), sizeof header);
  header.nlmsg_len = 0xffff;
  std::memcpy(message.data(), &header, sizeof header);
  EXPECT_TRUE(parse_proc_datagram(message).empty());
}

TEST(ReadProcess, ReadsOwnArgvAndStatus) {
  const ProcessDetails details = read_process(::getpid());
  ASSERT_TRUE(details.argv.has_value());
  ASSERT_FALSE(details.argv->args.empty());
  EXPECT_NE(details.argv->args[0].find("guest_init_test"), std::string::npos);
  ASSERT_TRUE(details.status.has_value());
  EXPECT_EQ(details.status->tgid, ::getpid());
  EXPECT_EQ(details.status->ppid, ::getppid());
  EXPECT_EQ(details.status->uid, ::getuid());
}

TEST(ReadProcess, ReapedProcessHasNothing) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  const ProcessDetails details = read_process(child);
  EXPECT_FALSE(details.argv.has_value());
  EXPECT_FALSE(details.status.has_value());
}

TEST(ReadProcess, ZombieHasStatusButNoArgv) {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  siginfo_t info{};
  ::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT);
  const ProcessDetails details = read_process(child);
  ::waitpid(child, nullptr, 0);
  EXPECT_FALSE(details.argv.has_value());
  ASSERT_TRUE(details.status.has_value());
  EXPECT_EQ(details.status->ppid, ::getpid());
}

// Against the real kernel: needs CAP_NET_ADMIN in the initial namespaces,
// so it is skipped elsewhere (a container, an unprivileged user).
TEST(ProcConnector, ReportsExecOfChild) {
  auto socket = open_proc_connector();
  if (!socket) GTEST_SKIP() << socket.error().message;

  const pid_t child = ::fork();
  if (child == 0) {
    ::execl("/bin/true", "true", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ASSERT_GT(child, 0);
  bool saw_exec = false;
  bool saw_exit = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<std::uint8_t> buffer(64 * 1024);
  while (!(saw_exec && saw_exit) && std::chrono::steady_clock::now() < deadline) {
    pollfd fd{socket->get(), POLLIN, 0};
    if (::poll(&fd, 1, 100) <= 0) continue;
    const ssize_t size = ::recv(socket->get(), buffer.data(), buffer.size(), 0);
    if (size <= 0) continue;
    for (const ProcEvent& event : parse_proc_datagram({buffer.data(), static_cast<std::size_t>(size)})) {
      if (event.tgid != child) continue;
      saw_exec = saw_exec || event.what == ProcEvent::What::kExec;
      saw_exit = saw_exit || (event.what == ProcEvent::What::kExit && event.pid == child);
    }
  }
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(saw_exec);
  EXPECT_TRUE(saw_exit);
}

}  // namespace
}  // namespace zwrm::guest
