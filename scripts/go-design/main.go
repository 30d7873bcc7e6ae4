// The Go tutorial's design (Sarama + Gin), as a same-hour reference for
// Herald's cost per send. -role producer: POST /send with a SyncProducer;
// -role consumer: reads the topic into memory, GET /notifications/:userID.
// Stand-in: Debian's Sarama 1.22 cannot join a consumer group on tansu 0.6,
// so the consumer reads every partition with a partition consumer, and
// GET /count (not in the tutorial) says how many it read.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net/http"
	"strconv"
	"sync"

	"github.com/Shopify/sarama"
	"github.com/gin-gonic/gin"
)

type User struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

type Notification struct {
	From    User   `json:"from"`
	To      User   `json:"to"`
	Message string `json:"message"`
}

var users = []User{{1, "Emma"}, {2, "Bruno"}, {3, "Rick"}, {4, "Lena"}}

var ErrUserNotFound = errors.New("user not found")

func findUser(id int) (User, error) {
	for _, u := range users {
		if u.ID == id {
			return u, nil
		}
	}
	return User{}, ErrUserNotFound
}

func getID(ctx *gin.Context, field string) (int, error) {
	id, err := strconv.Atoi(ctx.PostForm(field))
	if err != nil {
		return 0, err
	}
	return id, nil
}

func sendMessage(producer sarama.SyncProducer, ctx *gin.Context, fromID, toID int) error {
	message := ctx.PostForm("message")
	from, err := findUser(fromID)
	if err != nil {
		return err
	}
	to, err := findUser(toID)
	if err != nil {
		return err
	}
	n := Notification{From: from, To: to, Message: message}
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, _, err = producer.SendMessage(&sarama.ProducerMessage{
		Topic: "notifications",
		Key:   sarama.StringEncoder(strconv.Itoa(to.ID)),
		Value: sarama.StringEncoder(b),
	})
	return err
}

type store struct {
	mu   sync.RWMutex
	data map[string][]Notification
}

func main() {
	role := flag.String("role", "producer", "producer or consumer")
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	broker := flag.String("broker", "127.0.0.1:9092", "broker")
	flag.Parse()
	gin.SetMode(gin.ReleaseMode)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_1_0_0
	cfg.Producer.Return.Successes = true
	router := gin.New()
	if *role == "producer" {
		producer, err := sarama.NewSyncProducer([]string{*broker}, cfg)
		if err != nil {
			log.Fatal(err)
		}
		router.POST("/send", func(ctx *gin.Context) {
			fromID, err := getID(ctx, "fromID")
			if err != nil {
				ctx.JSON(http.StatusBadRequest, gin.H{"message": err.Error()})
				return
			}
			toID, err := getID(ctx, "toID")
			if err != nil {
				ctx.JSON(http.StatusBadRequest, gin.H{"message": err.Error()})
				return
			}
			if err := sendMessage(producer, ctx, fromID, toID); err != nil {
				if errors.Is(err, ErrUserNotFound) {
					ctx.JSON(http.StatusNotFound, gin.H{"message": "User not found"})
					return
				}
				ctx.JSON(http.StatusInternalServerError, gin.H{"message": err.Error()})
				return
			}
			ctx.JSON(http.StatusOK, gin.H{"message": "Notification sent successfully!"})
		})
	} else {
		admin, err := sarama.NewClusterAdmin([]string{*broker}, cfg)
		if err != nil {
			log.Fatal(err)
		}
		_ = admin.CreateTopic("notifications", &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false)
		consumer, err := sarama.NewConsumer([]string{*broker}, cfg)
		if err != nil {
			log.Fatal(err)
		}
		st := &store{data: map[string][]Notification{}}
		parts, err := consumer.Partitions("notifications")
		if err != nil {
			log.Fatal(err)
		}
		for _, p := range parts {
			pc, err := consumer.ConsumePartition("notifications", p, sarama.OffsetNewest)
			if err != nil {
				log.Fatal(err)
			}
			go func() {
				for msg := range pc.Messages() {
					var n Notification
					if err := json.Unmarshal(msg.Value, &n); err != nil {
						continue
					}
					st.mu.Lock()
					st.data[string(msg.Key)] = append(st.data[string(msg.Key)], n)
					st.mu.Unlock()
				}
			}()
		}
		router.GET("/notifications/:userID", func(ctx *gin.Context) {
			st.mu.RLock()
			ns := st.data[ctx.Param("userID")]
			st.mu.RUnlock()
			if len(ns) == 0 {
				ctx.JSON(http.StatusOK, gin.H{"message": "No notifications found for user", "notifications": []Notification{}})
				return
			}
			ctx.JSON(http.StatusOK, gin.H{"notifications": ns})
		})
		router.GET("/count", func(ctx *gin.Context) {
			st.mu.RLock()
			c := 0
			for _, v := range st.data {
				c += len(v)
			}
			st.mu.RUnlock()
			ctx.JSON(http.StatusOK, gin.H{"count": c})
		})
	}
	log.Fatal(router.Run(*addr))
}
