#include "protocol/flow.h"

#include <gtest/gtest.h>

namespace zwrm::protocol {
namespace {

TEST(Flow, SenderStopsAtWindowAndResumesOnGrant) {
  SendCredit credit;
  credit.spend(kInitialWindow);
  EXPECT_EQ(credit.available(), 0u);
  ASSERT_TRUE(credit.grant(1000));
  EXPECT_EQ(credit.available(), 1000u);
}

TEST(Flow, GrantBeyondWindowIsViolation) {
  SendCredit credit;
  EXPECT_FALSE(credit.grant(1));
  credit.spend(10);
  EXPECT_FALSE(credit.grant(11));
  EXPECT_TRUE(credit.grant(10));
}

TEST(Flow, ReceiverRejectsDataBeyondCredit) {
  ReceiveWindow window;
  ASSERT_TRUE(window.receive(kInitialWindow));
  auto status = window.receive(1);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("credit"), std::string::npos);
}

TEST(Flow, ReceiverGrantsInBatches) {
  ReceiveWindow window;
  ASSERT_TRUE(window.receive(kInitialWindow));
  EXPECT_EQ(window.consume(100), 0u);
  EXPECT_EQ(window.consume(kInitialWindow / 4), kInitialWindow / 4 + 100);
  ASSERT_TRUE(window.receive(kInitialWindow / 4 + 100));
  EXPECT_FALSE(window.receive(1));
}

TEST(Flow, FlushCreditReturnsPartialBatch) {
  ReceiveWindow window;
  ASSERT_TRUE(window.receive(10));
  EXPECT_EQ(window.consume(10), 0u);
  EXPECT_EQ(window.flush_credit(), 10u);
  EXPECT_EQ(window.flush_credit(), 0u);
}

TEST(Flow, ReleaseForwardsExactCreditAndRejectsExcess) {
  ReceiveWindow window;
  ASSERT_TRUE(window.receive(1000));
  EXPECT_FALSE(window.release(1001));
  ASSERT_TRUE(window.release(600));
  ASSERT_TRUE(window.release(400));
  EXPECT_FALSE(window.release(1));
  ASSERT_TRUE(window.receive(kInitialWindow));
}

}  // namespace
}  // namespace zwrm::protocol
