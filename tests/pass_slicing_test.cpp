// pass_slicing_test.cpp: a fan-out pass in slices lets the thread's ready I/O run between slices
// (over a real loopback socket), and a slice ends on its time or its session budget.
#include "gateway/ws/pass_slicing.hpp"

#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using crudcast::gateway::after_ready_io;
using crudcast::gateway::SliceBudget;
using namespace std::chrono_literals;

TEST(SliceBudget, ASliceEndsWhenItsTimeIsUpOrItServedItsShareOfSessions) {
    const auto t0 = SliceBudget::Clock::time_point{} + 1s;
    const SliceBudget budget(t0, 200us, 64);
    struct Row {
        std::size_t served;
        std::chrono::microseconds elapsed;
        bool spent;
    };
    const std::vector<Row> rows = {
        {1, 0us, false},  {1, 199us, false}, {1, 200us, true}, {63, 10us, false},
        {64, 10us, true}, {20, 500us, true}, {0, 0us, false},
    };
    for (const auto& row : rows) {
        EXPECT_EQ(budget.spent(row.served, t0 + row.elapsed), row.spent)
            << row.served << " sessions after " << row.elapsed.count() << " us";
    }
}

TEST(SliceBudget, TheDefaultsBoundASliceToAFractionOfAMillisecond) {
    const auto t0 = SliceBudget::Clock::now();
    const SliceBudget budget(t0);
    EXPECT_FALSE(budget.spent(1, t0));
    EXPECT_TRUE(budget.spent(1, t0 + 1ms));
    EXPECT_TRUE(budget.spent(SliceBudget::default_sessions, t0));
}

// A pass of `slices` slices on `ioc`; slice 0 sends a byte to `reader`'s peer, as a client whose
// request arrives while the pass runs. Returns the order: "s0", "s1", ... and "io" for the read.
std::vector<std::string> pass_with_arriving_request(int slices) {
    asio::io_context ioc(1);
    tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    tcp::socket client(ioc);
    client.connect(acceptor.local_endpoint());
    tcp::socket reader = acceptor.accept();

    std::vector<std::string> order;
    char byte = 0;
    reader.async_read_some(asio::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
        EXPECT_FALSE(ec) << ec.message();
        order.push_back("io");
    });
    std::function<void(int)> slice = [&](int i) {
        order.push_back("s" + std::to_string(i));
        if (i == 0) asio::write(client, asio::buffer("x", 1));  // on loopback, readable at once
        if (i + 1 < slices) after_ready_io(ioc.get_executor(), [&slice, i] { slice(i + 1); });
    };
    asio::post(ioc, [&] { slice(0); });
    ioc.run();
    return order;
}

TEST(AfterReadyIo, ARequestArrivingDuringAPassIsHandledRightAfterTheSliceItArrivedIn) {
    // Repeated: the order must not depend on luck.
    for (int run = 0; run < 20; ++run) {
        const auto order = pass_with_arriving_request(8);
        ASSERT_EQ(order.size(), 9u);
        EXPECT_EQ(order[0], "s0");
        EXPECT_EQ(order[1], "io") << "run " << run << ": the read waited for more than the slice it arrived in";
        EXPECT_EQ(order.back(), "s7");
    }
}

}  // namespace
